"""Lua scripts of the index of users' sessions (``index.py``), on the prelude and
the ``Script`` of ``lua.py``. Like hash mode's, each touches one user bucket and the
overflow keys of its fields (one Redis Cluster slot), so each is one round trip.
"""

from __future__ import annotations

from .lua import PRELUDE, Script

# The index of users' sessions (index.py). A user is a field of a user bucket;
# its value is a run of records, each: session id (12 bytes), expiry (4 bytes,
# big-endian Unix seconds), payload length (2 bytes), payload. A run too long
# for the bucket's compact encoding moves to the overflow key <bucket>:<field>,
# leaving a pointer (the same as a session's). Records whose expiry passed (by
# the web server's clock, sent along) go whenever a run is rewritten. Each script
# reads a run once, in one pass: its work grows with the run, which the cap of
# INDEX_ADD bounds (USER_SESSIONS_MAX).
INDEX_PRELUDE = (
    PRELUDE
    + """
-- The run of a user (following a pointer), and the records kept of it.
local function records(bucket, field, overflow)
  local run = redis.call('HGET', bucket, field)
  if is_pointer(run) then run = redis.call('GET', overflow) end
  return run or ''
end
-- The records of a run to keep, oldest first: not expired, and whose id is not a key
-- of the table drop. Returns nil for a value that is not exactly a run of records
-- (left as it is: not ours to judge).
local function keep(run, near, drop)
  local kept, longest, pos, seen = {}, 0, 1, 0
  while pos + 17 <= #run do
    local expires, size = struct.unpack('>I4I2', run, pos + 12)
    local stop = pos + 18 + size
    if stop > #run + 1 then return nil end
    seen = seen + 1
    if expires > near and not drop[string.sub(run, pos, pos + 11)] then
      kept[#kept + 1] = string.sub(run, pos, stop - 1)
      if expires > longest then longest = expires end
    end
    pos = stop
  end
  if pos ~= #run + 1 then return nil end
  return kept, longest, seen
end
-- Write a user's run back: inline, or under the overflow key when over limit bytes.
local function store(bucket, field, overflow, kept, longest, near, limit, pointer_byte)
  local old = redis.call('HGET', bucket, field)
  if #kept == 0 then
    redis.call('HDEL', bucket, field)
    if is_pointer(old) then redis.call('DEL', overflow) end
    return
  end
  local run, ttl = table.concat(kept), longest - near
  if #run > limit then
    redis.call('SET', overflow, run, 'EX', ttl)
    redis.call('HSET', bucket, field, pointer_byte .. struct.pack('>I4', longest))
  else
    redis.call('HSET', bucket, field, run)
    if is_pointer(old) then redis.call('DEL', overflow) end
  end
  raise_ttl(bucket, ttl)
end
"""
)

# KEYS: user bucket, overflow key. ARGV: field, the new record, the web server's
# clock, the inline limit, the pointer's first byte, the cap (USER_SESSIONS_MAX),
# another id of the same session (its backfilled record's), '1' to file the record
# as the oldest (a backfilled one) instead of the newest.
# Replaces the records of the same session, drops expired ones. A run is kept in
# the order records were written, so the first are the least recently active
# sessions: past the cap, those are returned, for the caller to end the sessions
# and then remove the records (INDEX_REMOVE); until then they stay listed (a
# session ended must never lose its record first), but a run never holds more
# than twice the cap (the oldest beyond it go at once).
INDEX_ADD = Script(
    INDEX_PRELUDE
    + """
local near, record, cap = tonumber(ARGV[3]), ARGV[2], tonumber(ARGV[6])
local drop = {[string.sub(record, 1, 12)] = true, [ARGV[7]] = true}
local kept, longest = keep(records(KEYS[1], ARGV[1], KEYS[2]), near, drop)
if not kept then kept, longest = {}, 0 end  -- a damaged run: replaced by this record
if ARGV[8] == '1' then table.insert(kept, 1, record) else kept[#kept + 1] = record end
local expires = struct.unpack('>I4', record, 13)
if expires > longest then longest = expires end
local over, ended = #kept - cap, {}
for i = 1, over do ended[i] = kept[i] end
if #kept > 2 * cap then
  local newest = {}
  for i = #kept - 2 * cap + 1, #kept do newest[#newest + 1] = kept[i] end
  kept = newest
end
store(KEYS[1], ARGV[1], KEYS[2], kept, longest, near, tonumber(ARGV[4]), ARGV[5])
return ended
"""
)

# KEYS: user bucket, overflow key. ARGV: field, the web server's clock, the
# inline limit, the pointer's first byte, then the ids of the records to drop.
INDEX_REMOVE = Script(
    INDEX_PRELUDE
    + """
local drop = {}
for i = 5, #ARGV do drop[ARGV[i]] = true end
local near = tonumber(ARGV[2])
local kept, longest = keep(records(KEYS[1], ARGV[1], KEYS[2]), near, drop)
if not kept then return 0 end  -- a damaged run: left as it is
store(KEYS[1], ARGV[1], KEYS[2], kept, longest, near, tonumber(ARGV[3]), ARGV[4])
return 1
"""
)

# KEYS: user bucket. ARGV: HSCAN cursor, HSCAN count, the web server's clock,
# the inline limit, the pointer's first byte, '1' for a dry run. Drops the
# expired records of one page of users. Returns {next cursor, records seen,
# records expired}, or {'0', -1, 0} when the key is not a hash.
INDEX_SWEEP = Script(
    INDEX_PRELUDE
    + """
local page = page_of(KEYS[1], ARGV[1], ARGV[2])
if not page then return {'0', -1, 0} end
local near, seen, expired = tonumber(ARGV[3]), 0, 0
for i = 1, #page[2], 2 do
  local field = page[2][i]
  local overflow = KEYS[1] .. ':' .. field
  local kept, longest, total = keep(records(KEYS[1], field, overflow), near, {})
  if not kept then kept, total = {}, -1 end  -- not a run of records: skipped
  seen, expired = seen + math.max(total, 0), expired + math.max(total - #kept, 0)
  if total >= 0 and #kept < total and ARGV[6] ~= '1' then
    store(KEYS[1], field, overflow, kept, longest, near, tonumber(ARGV[4]), ARGV[5])
  end
end
return {page[1], seen, expired}
""",
    needs_ack=False,
)
