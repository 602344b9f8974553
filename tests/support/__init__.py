"""The test harness: real servers started and stopped by PID (``servers.py``, ``sentinels.py``,
``clusters.py``, ``fault_servers.py``), faults injected on the wire (``faults.py``), the
configurations the contract runs over (``configs.py``), round trips counted on the client's
sockets (``redis_stats.py``), and the sites and data a few test files share. No test here."""
