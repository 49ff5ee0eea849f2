"""The Lua scripts behind `RedisSessionStore`, one atomic operation each, and the key layout they share.

Keys under the prefix `p`: a hash `p session:<id>` per coordinator session, the sorted set `p expiry`
of ids scored by `last_used`, `p transport:<key>` naming the implicit session of a transport session,
and a hash `p mcp:<id>` per handshake-era `Mcp-Session-Id` (deletions published on `p mcp-deleted`).
"""

from __future__ import annotations

from typing import Final

# KEYS: none (every key is derived from the prefix, so one install must keep its keys in one slot:
# use a hash-tagged prefix such as "{codegen-mcp}:" on Redis Cluster proxies).
# Record fields are stored as strings exactly as Python wrote them, so floats keep full precision.

CREATE: Final = """
local p, sid, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local key = p .. 'session:' .. sid
if ARGV[8] ~= '' then
  -- A live implicit session of this transport session already exists (another replica was first).
  local other = redis.call('GET', p .. 'transport:' .. ARGV[8])
  if other and other ~= sid then
    local last = redis.call('HGET', p .. 'session:' .. other, 'last_used')
    if last and tonumber(last) > tonumber(ARGV[6]) - tonumber(ARGV[9]) then
      return {other, redis.call('HGETALL', p .. 'session:' .. other)}
    end
  end
end
redis.call('DEL', key)
redis.call('HSET', key, 'worker_url', ARGV[4], 'created_at', ARGV[5], 'last_used', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', key, 'owner', ARGV[7]) end
if ARGV[8] ~= '' then
  redis.call('HSET', key, 'transport_key', ARGV[8])
  redis.call('SET', p .. 'transport:' .. ARGV[8], sid, 'PX', ttl)
end
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', p .. 'expiry', ARGV[6], sid)
return 1
"""

TOUCH: Final = """
local p, sid, ttl, now, max_age = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local key = p .. 'session:' .. sid
local last = redis.call('HGET', key, 'last_used')
if not last then return nil end
if tonumber(last) <= tonumber(now) - max_age then return nil end
if tonumber(now) > tonumber(last) then
  redis.call('HSET', key, 'last_used', now)
  redis.call('ZADD', p .. 'expiry', now, sid)
end
redis.call('PEXPIRE', key, ttl)
local tk = redis.call('HGET', key, 'transport_key')
if tk then redis.call('PEXPIRE', p .. 'transport:' .. tk, ttl) end
return redis.call('HGETALL', key)
"""

REPIN: Final = """
local key = ARGV[1] .. 'session:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return nil end
redis.call('HSET', key, 'worker_url', ARGV[3])
return redis.call('HGETALL', key)
"""

# Removes one session and its index entries; returns its fields, or an empty table when absent.
REMOVE_ONE: Final = """
local function remove(p, sid)
  local key = p .. 'session:' .. sid
  local fields = redis.call('HGETALL', key)
  redis.call('ZREM', p .. 'expiry', sid)
  if #fields == 0 then return fields end
  redis.call('DEL', key)
  for i = 1, #fields, 2 do
    if fields[i] == 'transport_key' then
      local tkey = p .. 'transport:' .. fields[i + 1]
      if redis.call('GET', tkey) == sid then redis.call('DEL', tkey) end
    end
  end
  return fields
end
"""

DELETE: Final = (
    REMOVE_ONE
    + """
local fields = remove(ARGV[1], ARGV[2])
if #fields == 0 then return nil end
return fields
"""
)

# Exactly-once expiry: the whole claim runs atomically inside Redis, so of several replicas claiming
# at once, each expired id is returned to exactly one of them.
CLAIM: Final = (
    REMOVE_ONE
    + """
local p, cutoff, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', p .. 'expiry', '-inf', cutoff, 'LIMIT', 0, limit)
local out = {}
for _, sid in ipairs(ids) do
  local fields = remove(p, sid)
  if #fields > 0 then
    out[#out + 1] = sid
    out[#out + 1] = fields
  end
end
return out
"""
)

FIND_BY_TRANSPORT: Final = """
local sid = redis.call('GET', ARGV[1] .. 'transport:' .. ARGV[2])
if not sid then return nil end
local fields = redis.call('HGETALL', ARGV[1] .. 'session:' .. sid)
if #fields == 0 then return nil end
return {sid, fields}
"""

LIST: Final = """
local p = ARGV[1]
local ids = redis.call('ZREVRANGE', p .. 'expiry', 0, tonumber(ARGV[2]) - 1)
local out = {}
for _, sid in ipairs(ids) do
  local fields = redis.call('HGETALL', p .. 'session:' .. sid)
  if #fields > 0 then
    out[#out + 1] = sid
    out[#out + 1] = fields
  end
end
return out
"""


# Handshake-era transport sessions: a hash `p mcp:<id>` {data (JSON), ttl (ms)} whose key TTL slides.
SAVE_TRANSPORT: Final = """
local key, ttl = ARGV[1], ARGV[3]
redis.call('HSET', key, 'data', ARGV[2], 'ttl', ttl)
redis.call('PEXPIRE', key, ttl)
return 1
"""

LOAD_TRANSPORT: Final = """
local v = redis.call('HMGET', ARGV[1], 'data', 'ttl')
if not v[1] then return nil end
redis.call('PEXPIRE', ARGV[1], v[2])
return v[1]
"""

# Deleting publishes the id, so replicas holding the session in memory drop it at once.
DELETE_TRANSPORT: Final = """
local n = redis.call('DEL', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return n
"""
