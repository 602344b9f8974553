"""Where a name lives and how to reach it: one strategy object per topology, given to the
storage's executor (``base.Topology``: one server).

- ``base.py``: ``Topology`` (one server) and ``Direct`` (one redis-py client);
- ``sentinel.py``: a primary that moves, and the pools that follow it; ``follower.py``: the
  threads that listen to the sentinels; ``discovery.py``: what the sentinels say;
  ``async_sentinel.py``: the asyncio pools that follow the same primary;
- ``cluster.py``: Redis Cluster, its operations under ``OPERATION_TIMEOUT``;
  ``cluster_connections.py``: the cluster client and its connection factory;
  ``deadline.py``: the clock an operation runs against;
- ``partitioned.py``: several servers by weight; ``weights.py``: LOCATION and WEIGHTS;
  ``hrw.py``: weighted rendezvous hashing;
- ``async_clients.py``: ``redis.asyncio`` clients per event loop; ``async_cluster.py``: the
  asyncio cluster client;
- ``server_facts.py``: what the engine learns about a server, once per process.

It imports ``errors`` only, of cache_sessions.
"""
