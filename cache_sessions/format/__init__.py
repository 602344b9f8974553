"""The stored value: the bytes a session becomes in Redis and is read back from.

A leaf of the package: it imports nothing of cache_sessions but ``errors``.

- ``codec.py``: the self-describing header, msgpack, the optional expiry and the overflow pointer;
- ``compact.py``: format 2's static tables of the keys and values Django puts in every session;
- ``compression.py``: the ``COMPRESS_LIB`` codecs, each with a bounded decompression.
"""
