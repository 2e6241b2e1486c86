//! Leases on Redis: a lease is a hash (owner, epoch) with a TTL, changed only by the scripts below, so
//! that a claim with the per-user limit (the user's running set is a sorted set by claim order), the
//! owner-only refresh and the owner-only release are each one atomic step. `redis::Script` runs them
//! by SHA and reloads them after a Redis restart.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;

use super::coordination::{RedisCoordination, corrupt, encode, millis, unavailable};
use super::pubsub::RoomEnvelope;
use crate::domain::{ConversationId, NodeId};
use crate::ports::coordination::{
    ClaimOutcome, ClaimRequest, CoordinationError, Lease, LeaseEnd, Leases, LimitPolicy,
    RoomMessage,
};

/// KEYS: lease, epoch, running (the user's), owned (this node's), claims (the order counter).
/// ARGV: node, ttl ms, conversation, max running, `evict`|`reject`, min epoch.
/// Returns `{"held", owner}`, `{"limit"}` or `{"claimed", epoch, evicted...}`.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
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
static REFRESH: LazyLock<Script> = LazyLock::new(|| {
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
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
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
            .arg(self.node_id.as_str())
            .arg(millis(self.lease_ttl))
            .arg(conversation.as_str())
            .arg(request.max_running)
            .arg(policy)
            .arg(request.min_epoch)
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
            .arg(millis(self.lease_ttl));
        for lease in leases {
            invocation
                .key(self.keys.lease(&lease.conversation))
                .key(self.keys.epoch(&lease.conversation))
                .key(self.keys.running(&lease.user_id))
                .arg(lease.epoch)
                .arg(lease.conversation.as_str());
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
            .arg(self.node_id.as_str())
            .arg(lease.epoch)
            .arg(lease.conversation.as_str())
            .arg(end)
            .arg(self.keys.room_channel(&lease.conversation))
            .arg(owner_gone)
            .invoke_async::<u8>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
