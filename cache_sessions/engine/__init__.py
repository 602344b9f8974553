"""What ``SessionStore`` (``backend.py``) and the session pages are made of, above the storage:

- ``ending.py``: deleting a session with its index record, and ``cycle_key``;
- ``user_sessions.py``: a user's sessions listed and ended (the API of ``users.py`` runs them);
- ``display.py``: how the pages and the admin show them.

It imports ``migration/``, ``storage/``, ``format/``, ``errors`` and ``keys``, never the public modules.
"""
