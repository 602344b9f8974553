"""System checks of the session alias: it can serve sessions the way the engine needs.

They run at startup (``manage.py check``, ``runserver``, ``migrate``) so a
misconfiguration is reported before the first request, not during it. A
check never crashes: whatever goes wrong while checking is itself reported.

- E001 the session alias cannot serve sessions (missing, not django-redis,
  ShardClient, a bad option value); E002 a key generator fails or is not
  deterministic; E004 (Redis Cluster) a brace in ``KEY_PREFIX``, or bucket
  names without exactly one ``{hash tag}``; W007 (Redis Cluster) every
  session name maps to one slot; W008 (Redis Cluster) the alias reads from
  replicas;
- W001 sessions of the size this site stores do not fit the server's
  ``hash-max-listpack-value`` (measured on a sample of stored sessions; on a
  site whose sample finds none, a logged-in session made with the alias's codec); W002 the
  server's ``hash-max-listpack-entries`` is low; W003 the server's limits
  cannot be read; W005 ``HASH_MAX_INLINE`` is above the server's limit;
- W013 ``FIELD_TTL=True`` on a server where field TTLs cost memory (Valkey) or
  do not exist (Redis 7); I002 ``FIELD_TTL=False`` on Redis 8, where they
  would cut the Redis CPU of every save (``storage/advice.py`` says which path
  each server gets, for ``cleanuprs --stats`` too);
- I001 the server could not be reached.

W004, W006 and E003 (the options) are in ``options.py``; E005, W009 and W010
(partitioned aliases, Sentinel) in ``topology.py``; E006 (two session
middlewares) in ``middleware.py``; W011 and W012 (the session pages and the
admin) in ``users.py``.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from redis.crc import key_slot
from redis.exceptions import RedisError

from .. import keys
from ..errors import SessionStoreError
from ..format.codec import is_overflow_pointer
from ..keys import new_session_key
from ..storage.advice import RECOMMENDED_VALUE_LIMIT, advise
from ..storage.bucket_names import bucket_name
from ..storage.buckets import HashStorage
from ..storage.registry import sessions_for
from ..topology import server_facts
from ..topology.cluster import ClusterTopology
from .options import ENGINE

RECOMMENDED_ENTRIES_LIMIT = 512
SAMPLE_BUCKETS = 32  # W001 looks at the sessions of this many random buckets...
FIELDS_PER_BUCKET = 16
OVERFLOW_SHARE = 0.1  # ...and warns when at least this share of them is kept out of their bucket
CLUSTER_SAMPLE = 64  # session keys whose Redis names E004 and W007 look at


@checks.register(checks.Tags.caches)
def check_session_alias(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if getattr(settings, "SESSION_ENGINE", None) != ENGINE:
        return []
    alias = settings.SESSION_CACHE_ALIAS
    try:
        return _check_session_alias(alias)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="cache_sessions.E001")]
    except (RedisError, SessionStoreError) as exc:
        return [checks.Info(f"Could not reach the Redis of CACHES[{alias!r}]: {exc}", id="cache_sessions.I001")]
    except Exception as exc:  # a check reports; it never takes manage.py down
        return [checks.Error(f"CACHES[{alias!r}] cannot serve sessions: {exc!r}", id="cache_sessions.E001")]


def _check_session_alias(alias: str) -> list[checks.CheckMessage]:
    sessions = sessions_for(alias)
    sample, other = new_session_key(), new_session_key()
    try:
        # locate() remembers its last key: ask for another one in between.
        first, _, second = sessions.locate(sample), sessions.locate(other), sessions.locate(sample)
    except Exception as exc:  # a user's generator can fail any way it likes
        return [
            checks.Error(
                f"A key generator of CACHES[{alias!r}] fails on a session key: {exc!r}", id="cache_sessions.E002"
            )
        ]
    if first != second:
        return [checks.Error(f"A key generator of CACHES[{alias!r}] is not deterministic.", id="cache_sessions.E002")]
    messages = check_cluster_names(alias, sessions) if isinstance(sessions.topology, ClusterTopology) else []
    if any(message.is_serious() for message in messages):
        return messages
    if isinstance(sessions, HashStorage):
        messages += check_listpack_limits(alias, sessions)
        messages += check_write_path(alias, sessions)
    return messages


def check_write_path(alias: str, sessions: HashStorage) -> list[checks.CheckMessage]:
    """W013: FIELD_TTL=True where field TTLs cost memory or do not exist; I002: FIELD_TTL=False
    where they would cut the Redis CPU of every save."""
    forced = sessions.options.field_ttl
    messages: list[checks.CheckMessage] = []
    for advice in advise(sessions):
        software = advice.software
        if forced and software.version and not software.compact_field_ttls:
            messages.append(
                checks.Warning(
                    f"OPTIONS['FIELD_TTL'] of CACHES[{alias!r}] is True, but {advice.label} is {software}: "
                    + (
                        "its hashes with field TTLs are hashtables, about 40% more memory per session."
                        if software.hsetex
                        else "it has no HSETEX, so sessions are written with the script anyway."
                    ),
                    hint="Set FIELD_TTL to None: field TTLs where the server keeps buckets compact (Redis 8).",
                    id="cache_sessions.W013",
                )
            )
        if forced is False and software.compact_field_ttls:
            messages.append(
                checks.Info(
                    f"OPTIONS['FIELD_TTL'] of CACHES[{alias!r}] is False on {advice.label} ({software}): saves run "
                    f"a script at about five times the Redis CPU of field TTLs.",
                    hint="Set FIELD_TTL to None once no process of a release without field TTLs writes these "
                    "buckets (docs: hash mode, upgrading to Redis 8).",
                    id="cache_sessions.I002",
                )
            )
    return messages


def check_cluster_names(alias: str, sessions: Any) -> list[checks.CheckMessage]:
    """E004: names a cluster cannot serve; W007: names that would all land on one node;
    W008: sessions read from replicas."""
    prefix = sessions.prefix
    if b"{" in prefix or b"}" in prefix:
        return [
            checks.Error(
                f"KEY_PREFIX of CACHES[{alias!r}] contains a brace: on Redis Cluster a {{hash tag}} in the "
                f"prefix pins every key of the alias, cache and sessions, to one slot of one node.",
                hint="Use a KEY_PREFIX without '{' and '}'.",
                id="cache_sessions.E004",
            )
        ]
    names = [sessions.locate(new_session_key()) for _ in range(CLUSTER_SAMPLE)]
    if isinstance(sessions, HashStorage) and not sessions.default_buckets():
        for bucket, *_ in names:
            if not keys.has_one_hash_tag(bucket[len(prefix) :]):
                return [
                    checks.Error(
                        f"HASH_KEY_GENERATOR of CACHES[{alias!r}] made the bucket name {bucket!r}, which does "
                        f"not carry exactly one {{hash tag}}: on Redis Cluster a session's overflow key "
                        f"(<bucket>:<field>) must share its bucket's slot.",
                        hint="Return names like 'h{<something per bucket>}', as the default generator does.",
                        id="cache_sessions.E004",
                    )
                ]
    cluster = sessions.topology.cluster()
    if cluster.read_from_replicas or cluster.load_balancing_strategy is not None:
        return [
            checks.Warning(
                f"CACHES[{alias!r}] reads from replicas (REDIS_CLIENT_KWARGS read_from_replicas or "
                f"load_balancing_strategy): a session read from a replica that lags behind is stale or missing, "
                f"which logs users out right after they log in.",
                hint="Read replicas through another alias; keep the session alias on the primaries.",
                id="cache_sessions.W008",
            )
        ]
    if len({key_slot(name[0]) for name in names}) == 1:
        return [
            checks.Warning(
                f"Every session of CACHES[{alias!r}] maps to the same cluster slot (e.g. {names[0][0]!r}): "
                f"one node would hold all of them.",
                hint="Raise BUCKETS, or give each bucket its own {hash tag} (not one shared tag).",
                id="cache_sessions.W007",
            )
        ]
    return []


def check_listpack_limits(alias: str, sessions: Any) -> list[checks.CheckMessage]:
    """Warn when the server's listpack limits keep this site's sessions from the compact encoding."""
    # Every server must keep buckets compact: the smallest limits win.
    limits = [server_facts.read_listpack_limits(redis) for redis in sessions.servers()]
    entries = min((entry for entry, _ in limits if entry is not None), default=None)
    value = min((value for _, value in limits if value is not None), default=None)
    inline = sessions.options.hash_max_inline
    messages: list[checks.CheckMessage] = []
    if value is None and inline is None:
        messages.append(
            checks.Warning(
                f"Could not read hash-max-listpack-value of CACHES[{alias!r}] (CONFIG is disabled, renamed or "
                f"forbidden by ACL): sessions over {server_facts.DEFAULT_INLINE_LIMIT} bytes, Redis's default limit, "
                f"will be kept out of their buckets.",
                hint="Set OPTIONS['HASH_MAX_INLINE'] to the server's hash-max-listpack-value.",
                id="cache_sessions.W003",
            )
        )
    if value is not None and inline is not None and inline > value:
        messages.append(
            checks.Warning(
                f"OPTIONS['HASH_MAX_INLINE'] of CACHES[{alias!r}] is {inline}, above the server's "
                f"hash-max-listpack-value ({value}): a bucket holding a session of {value + 1}-{inline} bytes "
                f"is converted to a hashtable for good and costs several times the memory.",
                hint=f"Lower HASH_MAX_INLINE to {value}, or raise hash-max-listpack-value to {inline}.",
                id="cache_sessions.W005",
            )
        )
    if value is not None and inline is None and value < RECOMMENDED_VALUE_LIMIT:
        overflowed, seen = overflow_sample(sessions)
        busy = max(advice.sizes[1] for advice in advise(sessions))
        if not seen and busy > value:  # a new or small site: the size of a session made here
            messages.append(
                checks.Warning(
                    f"A logged-in session of CACHES[{alias!r}] with a CSRF token and a message is {busy} bytes, "
                    f"more than the server's hash-max-listpack-value ({value} bytes), so such sessions are kept "
                    f"under keys of their own, which costs more memory than string mode (no session is stored "
                    f"yet to measure).",
                    hint=f"Set hash-max-listpack-value {RECOMMENDED_VALUE_LIMIT} in redis.conf (or CONFIG SET), "
                    f"or USE_HASH=False. To silence: SILENCED_SYSTEM_CHECKS = ['cache_sessions.W001'].",
                    id="cache_sessions.W001",
                )
            )
        if seen and overflowed >= OVERFLOW_SHARE * seen:
            messages.append(
                checks.Warning(
                    f"{overflowed} of {seen} sessions sampled in CACHES[{alias!r}] are larger than the server's "
                    f"hash-max-listpack-value ({value} bytes), so they are kept under keys of their own, "
                    f"which costs more memory than string mode.",
                    hint=f"Set hash-max-listpack-value {RECOMMENDED_VALUE_LIMIT} in redis.conf (or CONFIG SET), "
                    f"or USE_HASH=False. To silence: SILENCED_SYSTEM_CHECKS = ['cache_sessions.W001'].",
                    id="cache_sessions.W001",
                )
            )
    if entries is not None and entries < RECOMMENDED_ENTRIES_LIMIT:
        messages.append(
            checks.Warning(
                f"Redis hash-max-listpack-entries is {entries}: a bucket with more sessions than that is "
                f"converted to a hashtable and uses several times the memory.",
                hint=f"Set hash-max-listpack-entries {RECOMMENDED_ENTRIES_LIMIT} (or more), or raise BUCKETS.",
                id="cache_sessions.W002",
            )
        )
    return messages


def overflow_sample(sessions: Any, buckets: int = SAMPLE_BUCKETS) -> tuple[int, int]:
    """``(sessions kept under overflow keys, sessions seen)`` in a few random buckets (one round trip)."""
    if not sessions.default_buckets():
        return 0, 0
    names = [
        sessions.prefix + bucket_name(n) for n in random.sample(range(sessions.buckets), min(buckets, sessions.buckets))
    ]
    replies = []
    try:
        for redis, group in sessions.by_server(names):
            pipe = redis.pipeline(transaction=False)
            for name in group:
                pipe.hrandfield(name, FIELDS_PER_BUCKET, withvalues=True)
            replies += pipe.execute()
    except RedisError:  # e.g. an ACL without HRANDFIELD: no sample, no warning
        return 0, 0
    values = [value for reply in replies for value in reply[1::2]]
    return sum(1 for value in values if is_overflow_pointer(value)), len(values)
