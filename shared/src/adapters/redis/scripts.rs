//! The Lua scripts that make lease changes atomic: a claim with the per-user limit, the owner-only
//! refresh and release, a push that tells the owner in the same step, liveness and the reaping of
//! dead nodes, and the cleanup function's checks (see `janitor.rs`). Keys are named by the caller
//! (see `keys.rs`); `redis::Script` runs them by SHA and reloads them after a Redis restart.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: lease, epoch, running (the user's), owned (this node's), claims (the order counter).
/// ARGV: node, ttl ms, conversation, max running, `evict`|`reject`, min epoch.
/// Returns `{"held", owner}`, `{"limit"}` or `{"claimed", epoch, evicted...}`.
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return {'held', owner} end
local evicted = {}
if not redis.call('ZSCORE', KEYS[3], ARGV[3]) then
  local room = math.max(tonumber(ARGV[4]), 1) - 1
  local count = redis.call('ZCARD', KEYS[3])
  if count > room then
    if ARGV[5] == 'reject' then return {'limit'} end
    evicted = redis.call('ZRANGE', KEYS[3], 0, count - room - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, count - room - 1)
  end
  redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[5]), ARGV[3])
end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[6])
if epoch < floor then
  epoch = floor
  redis.call('SET', KEYS[2], epoch)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
local reply = {'claimed', tostring(epoch)}
for _, conversation in ipairs(evicted) do table.insert(reply, conversation) end
return reply
"#,
    )
});

/// KEYS: owned (this node's), claims (the order counter), then per lease its lease key, epoch key and
/// its user's running set. ARGV: node, ttl ms, then an epoch and a conversation id per lease.
/// Extends the leases still held by `node` under their epoch. A lease whose key is gone (expired, or
/// Redis restarted empty) is re-asserted if nobody was granted a later epoch since and it still counts
/// in its user's running set; with its epoch counter gone too (Redis lost its data, the running set
/// with it) it takes its place there again, so that the per-user limit holds at once. An expired lease
/// evicted from the running set meanwhile is lost. Returns the 1-based positions of the lost leases.
pub static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lost = {}
for i = 1, (#KEYS - 2) / 3 do
  local lease, counter, running = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local epoch, conversation = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local held = redis.call('HMGET', lease, 'owner', 'epoch')
  if held[1] == ARGV[1] and held[2] == epoch then
    redis.call('PEXPIRE', lease, ARGV[2])
  else
    local granted = redis.call('GET', counter)
    local counted = redis.call('ZSCORE', running, conversation)
    if held[1] or (granted and (tonumber(granted) > tonumber(epoch) or not counted)) then
      table.insert(lost, i)
    else
      if not counted then
        redis.call('ZADD', running, redis.call('INCR', KEYS[2]), conversation)
      end
      redis.call('SET', counter, epoch)
      redis.call('HSET', lease, 'owner', ARGV[1], 'epoch', epoch)
      redis.call('PEXPIRE', lease, ARGV[2])
      redis.call('SADD', KEYS[1], conversation)
    end
  end
end
return lost
"#,
    )
});

/// KEYS: lease, running (the user's), owned (this node's).
/// ARGV: node, epoch, conversation, `stopped`|`handed_over`, room channel, the `OwnerGone` message.
/// Deletes the lease only if `node` holds it under `epoch`. A stopped conversation leaves the user's
/// running set unless another lease runs it; a handed-over one tells the room (the caller's node skips it).
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lease = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
local held = lease[1] == ARGV[1] and lease[2] == ARGV[2]
if held then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[3], ARGV[3])
end
local someone_runs_it = (not held) and lease[1]
if ARGV[4] == 'stopped' and not someone_runs_it then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
if ARGV[4] == 'handed_over' and held then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return held and 1 or 0
"#,
    )
});

/// KEYS: inbox, lease, and the client action id's key (when the client gave one). ARGV: the action's
/// JSON, the node channels' prefix, the `InboxReady` message, how long the client id is remembered (s).
/// Appends the action (once per client action id) and tells the lease's owner; returns `{id}` or
/// `{id, owner}` if one was told.
pub static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = KEYS[3] and redis.call('GET', KEYS[3])
if not id then
  id = redis.call('XADD', KEYS[1], '*', 'action', ARGV[1])
  if KEYS[3] then redis.call('SET', KEYS[3], id, 'EX', ARGV[4]) end
end
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner and redis.call('PUBLISH', ARGV[2] .. owner, ARGV[3]) > 0 then
  return {id, owner}
end
return {id}
"#,
    )
});

/// KEYS: nodes. ARGV: node. Records the node's heartbeat at Redis's clock (nodes' clocks may differ).
pub static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[1])
return 1
"#,
    )
});

/// KEYS: nodes. ARGV: silence ms, then the prefixes of `owned:`, `lease:`, `watching:`, `presence:`
/// and `room:` names, the `OwnerGone` room message, `reap`|`count`, then the nodes whose connection
/// is gone. Removes the nodes silent for longer than the silence, or gone (`ZREM` decides, so exactly
/// one caller reaps each), deletes the leases they still hold, forgets their clients, tells the rooms
/// of their conversations. Returns `{nodes, client records, conversations...}`: how many nodes were
/// removed and presence fields deleted, and the conversations whose lease was freed. `count` changes
/// nothing and returns what `reap` would.
pub static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('TIME')
local cutoff = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[1])
local count_only = ARGV[8] == 'count'
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
for i = 9, #ARGV do table.insert(dead, ARGV[i]) end
local seen, nodes, clients, orphans = {}, 0, 0, {}
for _, node in ipairs(dead) do
  local listed
  if count_only then
    listed = not seen[node] and redis.call('ZSCORE', KEYS[1], node)
    seen[node] = true
  else
    listed = redis.call('ZREM', KEYS[1], node) == 1
  end
  if listed then
    nodes = nodes + 1
    local owned = ARGV[2] .. node
    for _, conversation in ipairs(redis.call('SMEMBERS', owned)) do
      local lease = ARGV[3] .. conversation
      if redis.call('HGET', lease, 'owner') == node then
        if not count_only then redis.call('DEL', lease) end
        table.insert(orphans, conversation)
      end
    end
    local watching = ARGV[4] .. node
    for _, conversation in ipairs(redis.call('SMEMBERS', watching)) do
      local presence = ARGV[5] .. conversation
      if count_only then
        clients = clients + redis.call('HEXISTS', presence, node)
      else
        clients = clients + redis.call('HDEL', presence, node)
      end
    end
    if not count_only then redis.call('DEL', owned, watching) end
  end
end
local reply = {tostring(nodes), tostring(clients)}
for _, conversation in ipairs(orphans) do
  if not count_only then redis.call('PUBLISH', ARGV[6] .. conversation, ARGV[7]) end
  table.insert(reply, conversation)
end
return reply
"#,
    )
});

/// KEYS: lease, running (the user's). ARGV: conversation. Removes the conversation from the user's
/// running set unless a lease runs it; returns 1 if it was removed.
pub static FORGET_RUNNING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return redis.call('ZREM', KEYS[2], ARGV[1])
"#,
    )
});

/// KEYS: nodes, then a lease key per conversation. ARGV: silence ms. Returns the 1-based positions of
/// the leases held by a node that beat within the silence, or that never beat (its TTL ends those).
pub static LIVE_LEASES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('TIME')
local cutoff = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[1])
local live = {}
for i = 2, #KEYS do
  local owner = redis.call('HGET', KEYS[i], 'owner')
  if owner then
    local beat = redis.call('ZSCORE', KEYS[1], owner)
    if not beat or tonumber(beat) > cutoff then table.insert(live, i - 1) end
  end
end
return live
"#,
    )
});
