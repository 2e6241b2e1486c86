//! Leases on Redis: a lease is a hash (owner, epoch) with a TTL, changed only by the scripts below, so
//! that a claim with the per-user limit (the user's running set is a sorted set by claim order), the
//! owner-only refresh and the owner-only release are each one atomic step. `redis::Script` runs them
//! by SHA and reloads them after a Redis restart.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::coordination::{RedisCoordination, corrupt, encode, millis, unavailable};
use super::keys::Keys;
use super::pubsub::RoomEnvelope;
use crate::domain::{ConversationId, NodeId, UserId};
use crate::ports::coordination::{
    ClaimOutcome, ClaimRequest, CoordinationError, Lease, LeaseEnd, Leases, LimitPolicy,
    NodeMessage, RoomMessage,
};

/// A Lua function the scripts that end a conversation's run share: its epoch counter and inbox stay
/// for `ms` (a new claim keeps them again), an empty inbox goes at once.
const RETIRE: &str = r#"
local function retire(epoch, inbox, ms)
  redis.call('PEXPIRE', epoch, ms)
  if redis.call('XLEN', inbox) == 0 then
    redis.call('DEL', inbox)
  else
    redis.call('PEXPIRE', inbox, ms)
  end
end
"#;

/// KEYS: lease, epoch, running (the user's), owned (this node's), activity (the counter ordering the
/// running set), inbox. ARGV: node, ttl ms, conversation, max running, `evict`|`reject`, min epoch, user.
/// The running set is scored by last activity (a claim, a user action); members being evicted have
/// their score negated: they stay counted until their owner stopped them, without holding a place.
/// Returns `{"held", owner}`, `{"limit"}` or `{"claimed", epoch, evicted...}`.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return {'held', owner} end
local evicted = {}
local score = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not score or tonumber(score) < 0 then
  local room = math.max(tonumber(ARGV[4]), 1) - 1
  local active = redis.call('ZCOUNT', KEYS[3], '(0', '+inf')
  if active > room then
    if ARGV[5] == 'reject' then return {'limit'} end
    evicted = redis.call('ZRANGEBYSCORE', KEYS[3], '(0', '+inf', 'LIMIT', 0, active - room)
    for _, victim in ipairs(evicted) do
      redis.call('ZADD', KEYS[3], -tonumber(redis.call('ZSCORE', KEYS[3], victim)), victim)
    end
  end
end
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[5]), ARGV[3])
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[6])
if epoch < floor then
  epoch = floor
  redis.call('SET', KEYS[2], epoch)
end
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[6])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', epoch, 'user', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
local reply = {'claimed', tostring(epoch)}
for _, conversation in ipairs(evicted) do table.insert(reply, conversation) end
return reply
"#,
    )
});

/// KEYS: owned (this node's), activity (the counter), then per lease its lease key, epoch key and
/// its user's running set. ARGV: node, ttl ms, then an epoch, a conversation id and a user per lease.
/// Extends the leases still held by `node` under their epoch. A lease whose key is gone (expired, or
/// Redis restarted empty) is re-asserted if nobody was granted a later epoch since and it still counts
/// in its user's running set (not being evicted); with its epoch counter gone too (Redis lost its data, the running set
/// with it) it takes its place there again, so that the per-user limit holds at once. An expired lease
/// evicted from the running set meanwhile is lost. Returns the 1-based positions of the lost leases.
static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lost = {}
for i = 1, (#KEYS - 2) / 3 do
  local lease, counter, running = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local epoch, conversation = ARGV[3 * i], ARGV[3 * i + 1]
  local held = redis.call('HMGET', lease, 'owner', 'epoch')
  if held[1] == ARGV[1] and held[2] == epoch then
    redis.call('PEXPIRE', lease, ARGV[2])
  else
    local granted = redis.call('GET', counter)
    local counted = redis.call('ZSCORE', running, conversation)
    -- Being evicted, it no longer holds a place: a lapsed lease is not re-asserted.
    local evicting = counted and tonumber(counted) < 0
    if held[1] or evicting or (granted and (tonumber(granted) > tonumber(epoch) or not counted)) then
      table.insert(lost, i)
    else
      if not counted then
        redis.call('ZADD', running, redis.call('INCR', KEYS[2]), conversation)
      end
      redis.call('SET', counter, epoch)
      redis.call('HSET', lease, 'owner', ARGV[1], 'epoch', epoch, 'user', ARGV[3 * i + 2])
      redis.call('PEXPIRE', lease, ARGV[2])
      redis.call('SADD', KEYS[1], conversation)
    end
  end
end
return lost
"#,
    )
});

/// KEYS: lease, running (the user's), owned (this node's), epoch, inbox, hand-overs, nodes.
/// ARGV: node, epoch, conversation, `stopped`|`handed_over`, room channel, the `OwnerGone` message,
/// retention ms, the node channels' prefix, the `HandoversWaiting` message.
/// Deletes the lease only if `node` holds it under `epoch`. A stopped conversation leaves the user's
/// running set unless another lease runs it, and its keys retire. A handed-over one tells its room (the
/// caller's node skips it), joins the hand-over list and tells every other node, so that one of them
/// claims it whether or not it has clients.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{RETIRE}
local lease = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
local held = lease[1] == ARGV[1] and lease[2] == ARGV[2]
if held then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[3], ARGV[3])
end
local someone_runs_it = (not held) and lease[1]
if ARGV[4] == 'stopped' and not someone_runs_it then
  redis.call('ZREM', KEYS[2], ARGV[3])
  retire(KEYS[4], KEYS[5], ARGV[7])
end
if ARGV[4] == 'handed_over' and held then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  local now = redis.call('TIME')
  redis.call('ZADD', KEYS[6], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[3])
  for _, node in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
    if node ~= ARGV[1] then redis.call('PUBLISH', ARGV[8] .. node, ARGV[9]) end
  end
end
return held and 1 or 0
"#
    ))
});

/// KEYS: lease, running (the user's), epoch, inbox. ARGV: conversation, retention ms. Forgets a
/// stopped conversation that no lease runs: it leaves its user's running set and its keys retire.
/// Returns 1 if it was in the running set.
pub(super) static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{RETIRE}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
retire(KEYS[3], KEYS[4], ARGV[2])
return redis.call('ZREM', KEYS[2], ARGV[1])
"#
    ))
});

/// Forgets a stopped conversation no lease runs (see `FORGET`); whether it was counted as running.
pub(super) async fn forget(
    commands: &mut (impl redis::aio::ConnectionLike + Send),
    keys: &Keys,
    conversation: &ConversationId,
    user_id: &UserId,
    retention: Duration,
) -> Result<bool, CoordinationError> {
    FORGET
        .key(keys.lease(conversation))
        .key(keys.running(user_id))
        .key(keys.epoch(conversation))
        .key(keys.inbox(conversation))
        .arg(conversation.as_str())
        .arg(millis(retention))
        .invoke_async::<u8>(commands)
        .await
        .map(|removed| removed == 1)
        .map_err(unavailable)
}

#[async_trait]
impl Leases for RedisCoordination {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, CoordinationError> {
        let conversation = &request.conversation;
        let policy = match request.policy {
            LimitPolicy::EvictOldest => "evict",
            LimitPolicy::Reject => "reject",
        };
        let reply: Vec<String> = CLAIM
            .key(self.keys.lease(conversation))
            .key(self.keys.epoch(conversation))
            .key(self.keys.running(&request.user_id))
            .key(self.keys.owned(&self.node_id))
            .key(self.keys.claims())
            .key(self.keys.inbox(conversation))
            .arg(self.node_id.as_str())
            .arg(millis(self.settings.lease_ttl))
            .arg(conversation.as_str())
            .arg(request.max_running)
            .arg(policy)
            .arg(request.min_epoch)
            .arg(request.user_id.as_str())
            .invoke_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [kind, owner] if kind == "held" => Ok(ClaimOutcome::Held {
                owner: NodeId::new(owner),
            }),
            [kind] if kind == "limit" => Ok(ClaimOutcome::LimitReached),
            [kind, epoch, evicted @ ..] if kind == "claimed" => Ok(ClaimOutcome::Claimed {
                lease: Lease {
                    conversation: conversation.clone(),
                    user_id: request.user_id.clone(),
                    owner: self.node_id.clone(),
                    epoch: epoch.parse().map_err(corrupt)?,
                },
                evicted: evicted
                    .iter()
                    .map(|id| ConversationId::parse(id).map_err(corrupt))
                    .collect::<Result<_, _>>()?,
            }),
            other => Err(corrupt(format!("unexpected claim reply {other:?}"))),
        }
    }

    async fn refresh(&self, leases: &[Lease]) -> Result<Vec<ConversationId>, CoordinationError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = REFRESH.key(self.keys.owned(&self.node_id));
        invocation
            .key(self.keys.claims())
            .arg(self.node_id.as_str())
            .arg(millis(self.settings.lease_ttl));
        for lease in leases {
            invocation
                .key(self.keys.lease(&lease.conversation))
                .key(self.keys.epoch(&lease.conversation))
                .key(self.keys.running(&lease.user_id))
                .arg(lease.epoch)
                .arg(lease.conversation.as_str())
                .arg(lease.user_id.as_str());
        }
        let lost: Vec<usize> = invocation
            .invoke_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(lost
            .into_iter()
            .filter_map(|position| leases.get(position.checked_sub(1)?))
            .map(|lease| lease.conversation.clone())
            .collect())
    }

    async fn release(&self, lease: &Lease, end: LeaseEnd) -> Result<(), CoordinationError> {
        let end = match end {
            LeaseEnd::Stopped => "stopped",
            LeaseEnd::HandedOver => "handed_over",
        };
        let owner_gone = encode(&RoomEnvelope {
            skip: Some(self.node_id.clone()),
            message: RoomMessage::OwnerGone,
        })?;
        RELEASE
            .key(self.keys.lease(&lease.conversation))
            .key(self.keys.running(&lease.user_id))
            .key(self.keys.owned(&self.node_id))
            .key(self.keys.epoch(&lease.conversation))
            .key(self.keys.inbox(&lease.conversation))
            .key(self.keys.handovers())
            .key(self.keys.nodes())
            .arg(self.node_id.as_str())
            .arg(lease.epoch)
            .arg(lease.conversation.as_str())
            .arg(end)
            .arg(self.keys.room_channel(&lease.conversation))
            .arg(owner_gone)
            .arg(millis(self.settings.retention))
            .arg(self.keys.kind_prefix("node"))
            .arg(encode(&NodeMessage::HandoversWaiting)?)
            .invoke_async::<u8>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn forget_stopped(
        &self,
        conversation: &ConversationId,
        user_id: &UserId,
    ) -> Result<(), CoordinationError> {
        forget(
            &mut self.commands(),
            &self.keys,
            conversation,
            user_id,
            self.settings.retention,
        )
        .await
        .map(drop)
    }

    async fn take_handed_over(
        &self,
        limit: usize,
    ) -> Result<Vec<ConversationId>, CoordinationError> {
        let popped: Vec<(String, f64)> = redis::cmd("ZPOPMIN")
            .arg(self.keys.handovers())
            .arg(limit.max(1))
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        popped
            .into_iter()
            .map(|(id, _)| ConversationId::parse(&id).map_err(corrupt))
            .collect()
    }
}
