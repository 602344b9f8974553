"""Lua scripts of hash mode's writes. Each touches one bucket and the overflow
keys of its fields (``<bucket>:<field>``, which share the bucket's ``{hash
tag}``, so one Redis Cluster slot), so each is one round trip. Reads need no
script: a plain HGET (and, for a pointer, a GET of the overflow key).

A bucket field holds a session value whose header carries its absolute
expiry (``codec.py``): Redis before 7.4 has no per-field TTL, so the scripts
read it with ``struct.unpack`` and judge it inside the script, which makes
"is it still alive?" and the write or delete that follows one atomic step.
A write is judged by the web server's clock (sent along, as reads use it)
when the expiry is more than a minute away from it either way, which is
nearly always; only closer calls ask the Redis server's own clock (``TIME``,
which costs a script ~1.5 us), so web servers whose clocks disagree by less
than a minute never overwrite a session the other still sees as live. A 5-byte
value whose codec bits are 6 is a pointer: the session itself is the string
at ``<bucket>:<field>``, kept out of the bucket because it is larger than the
server's ``hash-max-listpack-value``.

Each script is sent with EVALSHA of its SHA1, computed here once; a server
that does not know it yet (new, restarted, flushed, or a promoted replica)
answers NOSCRIPT and gets SCRIPT LOAD, then the EVALSHA again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    source: str
    # Whether it changes a session, record or index entry, so that MIN_REPLICAS_ACK waits
    # for replicas (removing what has expired anyway need not).
    needs_ack: bool = True
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


PRELUDE = """
local function expiry(v)
  if not v or #v < 5 or string.byte(v, 1) % 16 < 8 then return nil end
  return struct.unpack('>I4', v, 2)
end
local function is_pointer(v)
  return v and #v == 5 and string.byte(v, 1) % 8 == 6
end
local server_now
local function now()
  if not server_now then server_now = tonumber(redis.call('TIME')[1]) end
  return server_now
end
-- Whether v is a live value; near is the web server's clock. An expiry more than
-- a minute away from it is judged without asking the Redis server's clock.
local function alive(v, near)
  if not v then return false end
  local e = expiry(v)
  if e == nil or e > near + 60 then return true end
  if e < near - 60 then return false end
  return e > now()
end
-- Raise a key's TTL to ttl seconds, never lower it: EXPIRE GT (and NX for a key
-- without a TTL yet) on Redis 7.0+, PTTL then EXPIRE before.
local function raise_ttl(key, ttl)
  if (redis.REDIS_VERSION_NUM or 0) >= 0x070000 then
    if redis.call('EXPIRE', key, ttl, 'GT') == 0 then redis.call('EXPIRE', key, ttl, 'NX') end
  elseif redis.call('PTTL', key) < ttl * 1000 then
    redis.call('EXPIRE', key, ttl)
  end
end
-- One HSCAN page of a bucket, or nil when the key is not a hash (not a bucket: left alone).
local function page_of(key, cursor, count)
  local page = redis.pcall('HSCAN', key, cursor, 'COUNT', count)
  if page.err then
    if string.find(page.err, 'WRONGTYPE') then return nil end
    error(page)
  end
  return page
end
local function drop(bucket, field, v)
  redis.call('HDEL', bucket, field)
  if is_pointer(v) then redis.call('DEL', bucket .. ':' .. field) end
end
-- Remove the expired fields among flat = {field, value, field, value...} (server clock).
local function drop_expired(bucket, flat, dry_run)
  local expired = 0
  for i = 1, #flat, 2 do
    local e = expiry(flat[i + 1])
    if e ~= nil and e <= now() then
      expired = expired + 1
      if not dry_run then drop(bucket, flat[i], flat[i + 1]) end
    end
  end
  return expired
end
"""

# KEYS: bucket, overflow key. ARGV: field, value for the bucket, value for
# the overflow key ('' when it fits the bucket), ttl (> 0), mode ('1'
# create, '0' update, '2' either), how many fields to sweep for expiry (0:
# none), the web server's clock (Unix seconds).
# Create refuses a live field, unless it holds exactly what this call writes:
# then it is this very create, retried after its reply was lost, and succeeds
# again without writing. Update refuses a missing or expired field (it never
# resurrects). The bucket's TTL is raised to cover the longest-lived session,
# never lowered, so a bucket whose sessions all expired goes away (raise_ttl).
# A write with a sweep limit also removes expired fields of its
# bucket: all of them when the bucket is that small, else that many at random.
WRITE = Script(
    PRELUDE
    + """
local bucket, field = KEYS[1], ARGV[1]
local ttl, limit, near = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local old = redis.call('HGET', bucket, field)
if ARGV[5] == '1' then
  if alive(old, near) then
    local mine = old == ARGV[2] and (ARGV[3] == '' or redis.call('GET', KEYS[2]) == ARGV[3])
    return mine and 1 or 0
  end
elseif ARGV[5] == '0' and not alive(old, near) then
  if old then drop(bucket, field, old) end
  return 0
end
redis.call('HSET', bucket, field, ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)
elseif is_pointer(old) then
  redis.call('DEL', KEYS[2])
end
raise_ttl(bucket, ttl)
if limit > 0 then
  local flat
  if redis.call('HLEN', bucket) <= limit then
    flat = redis.call('HGETALL', bucket)
  else
    flat = redis.call('HRANDFIELD', bucket, limit, 'WITHVALUES')
  end
  drop_expired(bucket, flat, false)
end
return 1
"""
)

# KEYS: bucket, overflow key. ARGV: field.
DELETE = Script(
    PRELUDE
    + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then drop(KEYS[1], ARGV[1], v) end
return v and 1 or 0
"""
)

# KEYS: bucket. ARGV: HSCAN cursor, HSCAN count, '1' for a dry run.
# Returns {next cursor, fields seen, expired fields (removed unless dry run)},
# or {'0', -1, 0} when the key is not a hash (not a bucket: left alone).
# HSCAN's COUNT bounds the work of one call on a large (hashtable) bucket; a
# compact bucket is small by construction and is read in one step.
SWEEP = Script(
    PRELUDE
    + """
local page = page_of(KEYS[1], ARGV[1], ARGV[2])
if not page then return {'0', -1, 0} end
return {page[1], #page[2] / 2, drop_expired(KEYS[1], page[2], ARGV[3] == '1')}
""",
    needs_ack=False,
)

# String mode's create on servers without SET NX GET (before Redis 7.0).
# KEYS: the session key. ARGV: value, ttl. Returns 1 when stored, or when the
# key already holds exactly this value (this create, retried), else 0.
CREATE_STRING = Script(
    """
local old = redis.call('GET', KEYS[1])
if old then return old == ARGV[1] and 1 or 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
)
