"""``MIGRATE_FROM``: moving sessions from where they used to live into ours.

- ``fallback.py``: the read-through (a miss looked up in the old store and moved);
- ``copy.py``: the bulk copy of ``manage.py migratesessions``;
- ``base.py``: what an old store is (``Source``), and what the sources share;
- ``registry.py``: ``build_source``, the one module that imports every source;
- the sources, each importing only ``base`` of this package: ``django.py`` (Django's engines),
  ``redis.py`` (cache_sessions with other options, django-redis-sessions), ``redisession.py``
  (django-redisession), whose pickles ``pickled.py`` and ``pickle_machine.py`` read without
  unpickling.

It imports ``storage/``, ``topology/``, ``format/``, ``errors`` and ``keys``, never the layers above it.
"""
