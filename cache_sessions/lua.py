"""Lua scripts of hash mode. Each touches one bucket and the overflow keys of
its fields (``<bucket>:<field>``, which share the bucket's ``{hash tag}``, so
one Redis Cluster slot), so each is one round trip.

A bucket field holds a session value whose header carries its absolute
expiry (``codec.py``): Redis before 7.4 has no per-field TTL, so the scripts
read it with ``struct.unpack`` and compare it with the Redis server's own
clock (``TIME``), which makes "is it still alive?" and the write or delete
that follows one atomic step, whatever the web servers' clocks say. A 5-byte
value whose codec bits are 6 is a pointer: the session itself is the string
at ``<bucket>:<field>``, kept out of the bucket because it is larger than the
server's ``hash-max-listpack-value``.
"""

PRELUDE = """
local function expiry(v)
  if not v or #v < 5 or string.byte(v, 1) % 16 < 8 then return nil end
  return struct.unpack('>I4', v, 2)
end
local function is_pointer(v)
  return v and #v == 5 and string.byte(v, 1) % 8 == 6
end
local function alive(v, now)
  if not v then return false end
  local e = expiry(v)
  return e == nil or e > now
end
local function drop(bucket, field, v)
  redis.call('HDEL', bucket, field)
  if is_pointer(v) then redis.call('DEL', bucket .. ':' .. field) end
end
-- Remove the expired fields among flat = {field, value, field, value...}.
local function drop_expired(bucket, flat, now, dry_run)
  local expired = 0
  for i = 1, #flat, 2 do
    local e = expiry(flat[i + 1])
    if e ~= nil and e <= now then
      expired = expired + 1
      if not dry_run then drop(bucket, flat[i], flat[i + 1]) end
    end
  end
  return expired
end
local now = tonumber(redis.call('TIME')[1])
"""

# LOAD, the hot read path, is sent without PRELUDE (no TIME, no functions to define).

# KEYS: bucket, overflow key. ARGV: field. Returns the stored value, or the
# value a pointer points at (so a big session also loads in one round trip),
# or nil. Measured: as fast as a plain HGET from redis-py.
LOAD = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and #v == 5 and string.byte(v, 1) % 8 == 6 then return redis.call('GET', KEYS[2]) end
return v
"""

# KEYS: bucket, overflow key. ARGV: field, value for the bucket, value for
# the overflow key ('' when it fits the bucket), ttl (> 0), mode ('1'
# create, '0' update, '2' either), how many fields to sweep for expiry (0: none).
# Create refuses a live field; update refuses a missing or expired one (it
# never resurrects). The bucket's TTL is raised to cover the longest-lived
# session, never lowered, so a bucket whose sessions all expired goes away.
# A write with a sweep limit also removes expired fields of its bucket:
# all of them when the bucket is that small, else that many chosen at random.
WRITE = (
    PRELUDE
    + """
local bucket, field = KEYS[1], ARGV[1]
local ttl, limit = tonumber(ARGV[4]), tonumber(ARGV[6])
local old = redis.call('HGET', bucket, field)
if ARGV[5] == '1' then
  if alive(old, now) then return 0 end
elseif ARGV[5] == '0' and not alive(old, now) then
  if old then drop(bucket, field, old) end
  return 0
end
redis.call('HSET', bucket, field, ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)
elseif is_pointer(old) then
  redis.call('DEL', KEYS[2])
end
if redis.call('PTTL', bucket) < ttl * 1000 then redis.call('EXPIRE', bucket, ttl) end
if limit > 0 then
  local flat
  if redis.call('HLEN', bucket) <= limit then
    flat = redis.call('HGETALL', bucket)
  else
    flat = redis.call('HRANDFIELD', bucket, limit, 'WITHVALUES')
  end
  drop_expired(bucket, flat, now, false)
end
return 1
"""
)

# KEYS: bucket, overflow key. ARGV: field.
DELETE = (
    PRELUDE
    + """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if is_pointer(v) then redis.call('DEL', KEYS[2]) end
end
return v and 1 or 0
"""
)

# KEYS: bucket. ARGV: HSCAN cursor, HSCAN count, '1' for a dry run.
# Returns {next cursor, fields seen, expired fields (removed unless dry run)}.
# HSCAN's COUNT bounds the work of one call on a large (hashtable) bucket; a
# compact bucket is small by construction and is read in one step.
SWEEP = (
    PRELUDE
    + """
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
return {page[1], #page[2] / 2, drop_expired(KEYS[1], page[2], now, ARGV[3] == '1')}
"""
)
