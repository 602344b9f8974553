"""The storage core: sessions (and app records) in Redis, as I/O-free operations and the
executors that send them.

- ``calls.py``: a round trip as data (``Call``), and operations of several (``drive``/``adrive``);
- ``executor.py``: sending calls, sync and async, on the topology given (``topology/``);
  ``sending.py``: one attempt at one call on one client;
- ``acks.py``: ``MIN_REPLICAS_ACK``'s WAIT after a write;
- ``options.py``: the session options of an alias, parsed once;
- ``base.py``: ``Storage``, the contract of a storage mode; ``strings.py`` and ``buckets.py``:
  string mode and hash mode; ``bucket_names.py``: hash mode's key names; ``lua.py``: hash mode's
  scripts; ``field_ttls.py``: hash mode's writes without a script (Redis 8);
- ``index.py``, ``index_lua.py``, ``index_meta.py``: the index of users' sessions;
- ``sweep.py``: removing expired sessions; ``backfill.py``: indexing sessions older than the index;
- ``registry.py``: the storage of each alias, built once per process.

It imports ``topology/``, ``format/``, ``errors`` and ``keys``, never the layers above it.
"""
