"""Django's system checks of cache_sessions, one module per subject (importing this
package registers them all: ``apps.CacheSessionsConfig.ready``).

- ``options.py``: the alias's OPTIONS (W004, E003, W006);
- ``alias.py``: the session alias can serve sessions (E001, E002, E004, W001-W003,
  W005, W007, W008, I001);
- ``topology.py``: partitioned aliases and Sentinel services (E005, W009, W010);
- ``middleware.py``: one session middleware (E006);
- ``users.py``: the session pages and the admin (W011, W012).
"""

from . import alias, middleware, options, topology, users

__all__ = ["alias", "middleware", "options", "topology", "users"]
