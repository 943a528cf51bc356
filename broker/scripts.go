package broker

import "github.com/redis/go-redis/v9"

// The Lua scripts below are the only writers of a session's status. Each touches
// the keys of one session (one Cluster slot) or one global key, and Redis runs a
// script without interleaving anything else, which is what makes each status
// step happen at most once.

// admitScript takes a place among the open sessions: it drops places whose time
// ran out, refuses when max are left, and adds id until now+ttl.
// KEYS: open set. ARGV: max, id, ttl ms. Returns 1 or 0.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
return 1
`)

// startScript moves a queued session to started on runtime ARGV[1]; any other
// status is returned unchanged, so a session starts once.
// KEYS: hash. ARGV: runtime id, now ms. Returns {ok, request, ttl} when it
// started the session, else {status} (gone when the session expired).
var startScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'gone'} end
if st ~= 'queued' then return {st} end
redis.call('HSET', KEYS[1], 'status', 'started', 'runtime', ARGV[1], 'startedAt', ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'request', 'ttl')
local ttl = tonumber(v[2]) or 300000
redis.call('PEXPIRE', KEYS[1], ttl)
return {'ok', v[1] or '', tostring(ttl)}
`)

// appendScript adds one event of a running session, only while runtime ARGV[1]
// still owns it: a runtime declared lost cannot write after the fact. An event
// id is its seq ("7-0"), so a repeated write is refused by the stream itself.
// A tool_call event also records its call id as pending (ARGV[6], ARGV[7]) in
// the same step, so the client can answer the call as soon as it sees it.
// KEYS: hash, events, pending. ARGV: runtime id, event id, event JSON, maxlen,
// ttl ms[, call id, tool name]. Returns 1, or 0 when the session is not this
// runtime's.
var appendScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'runtime')
if v[1] ~= 'started' or v[2] ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[5])
if ARGV[6] then
  redis.call('HSET', KEYS[3], ARGV[6], ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], ARGV[2], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`)

// finishScript writes a session's terminal event and marks it done, then lets
// every key of the session expire after its ttl. ARGV[1] is the runtime that
// must own the started session, or "" when the session must still be queued.
// ARGV[7] = "1" also pushes an empty entry to the tools list, which wakes the
// run's reader of tool answers from its blocking pop so it can stop at once.
// KEYS: hash, events, pending, tools. ARGV: runtime id or "", event id, event
// JSON, code, now ms, maxlen[, wake]. Returns 1, or 0 when the status did not
// match.
var finishScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'status', 'runtime', 'ttl')
if not v[1] then return 0 end
if ARGV[1] == '' then
  if v[1] ~= 'queued' then return 0 end
elseif v[1] ~= 'started' or v[2] ~= ARGV[1] then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], ARGV[2], 'e', ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'done', 'code', ARGV[4], 'endedAt', ARGV[5])
if ARGV[7] == '1' then redis.call('RPUSH', KEYS[4], '') end
local ttl = tonumber(v[3]) or 300000
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
return 1
`)

// toolResultScript hands a client's answer to the runtime, once per pending
// call, only from the session's owner, and only while the session runs: a
// session that ended (RUNTIME_LOST included) has no reader for the answer.
// KEYS: hash, pending, tools. ARGV: owner, call id, answer JSON.
// Returns ok, nf (no session), unauth or np (call not pending).
var toolResultScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'owner', 'ttl', 'status')
if not v[1] then return 'nf' end
if v[1] ~= ARGV[1] then return 'unauth' end
if v[3] == 'done' then
  redis.call('DEL', KEYS[2])
  return 'np'
end
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 'np' end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], tonumber(v[2]) or 300000)
return 'ok'
`)

// cancelScript ends a queued session at once with the error event ARGV[2], or
// flags a started one for its runtime to stop.
// KEYS: hash, events, pending, tools. ARGV: owner, event JSON, now ms, maxlen.
// Returns {nf}, {unauth}, {ended}, {started, runtime id} or {done}.
var cancelScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'owner', 'status', 'runtime', 'ttl')
if not v[1] then return {'nf'} end
if v[1] ~= ARGV[1] then return {'unauth'} end
if v[2] == 'queued' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '1-0', 'e', ARGV[2])
  redis.call('HSET', KEYS[1], 'status', 'done', 'code', 'CANCELLED', 'endedAt', ARGV[3])
  local ttl = tonumber(v[4]) or 300000
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
  return {'ended'}
end
if v[2] == 'started' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  return {'started', v[3] or ''}
end
return {'done'}
`)
