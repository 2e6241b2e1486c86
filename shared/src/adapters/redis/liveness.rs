//! Liveness on Redis: heartbeats in a sorted set at Redis's clock, and the reaping of dead nodes (silent
//! too long, or whose channel nobody listens to any more) by one script, shared with the cleanup
//! function's janitor.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionLike;

use super::coordination::{RedisCoordination, corrupt, encode, millis, unavailable};
use super::keys::Keys;
use super::pubsub::RoomEnvelope;
use crate::domain::{ConversationId, NodeId};
use crate::ports::Reaped;
use crate::ports::coordination::{CoordinationError, Liveness, NodeMessage, RoomMessage};

/// KEYS: nodes. ARGV: node. Records the node's heartbeat at Redis's clock (nodes' clocks may differ);
/// returns 1 if the node was not listed (its first beat, or it was reaped meanwhile).
static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('TIME')
return redis.call('ZADD', KEYS[1], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[1])
"#,
    )
});

/// Records `node`'s heartbeat; whether it was not listed before (see `BEAT`).
pub(super) async fn beat_as(
    commands: &mut (impl ConnectionLike + Send),
    keys: &Keys,
    node: &NodeId,
) -> Result<bool, CoordinationError> {
    BEAT.key(keys.nodes())
        .arg(node.as_str())
        .invoke_async::<u8>(commands)
        .await
        .map(|added| added == 1)
        .map_err(unavailable)
}

/// KEYS: nodes, hand-overs. ARGV: silence ms, then the prefixes of `owned:`, `lease:`, `watching:`,
/// `presence:` and `room:` names, the `OwnerGone` room message, `reap`|`count`, the node channels'
/// prefix, the `HandoversWaiting` message, then the nodes whose connection is gone. Removes the nodes
/// silent for longer than the silence, or gone (`ZREM` decides, so exactly one caller reaps each),
/// deletes the leases they still held and puts those conversations on the hand-over list, forgets
/// their clients, tells the rooms of their conversations and every live node, so that the survivors
/// share the takeovers. Returns `{nodes, client records, conversations...}`: how many nodes were
/// removed and presence fields deleted, and the conversations whose lease was freed. `count` changes
/// nothing and returns what `reap` would.
pub(super) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('TIME')
local cutoff = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[1])
local count_only = ARGV[8] == 'count'
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
for i = 11, #ARGV do table.insert(dead, ARGV[i]) end
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
local stamp = now[1] * 1000 + math.floor(now[2] / 1000)
for _, conversation in ipairs(orphans) do
  if not count_only then
    redis.call('ZADD', KEYS[2], stamp, conversation)
    redis.call('PUBLISH', ARGV[6] .. conversation, ARGV[7])
  end
  table.insert(reply, conversation)
end
if #orphans > 0 and not count_only then
  for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    redis.call('PUBLISH', ARGV[9] .. node, ARGV[10])
  end
end
return reply
"#,
    )
});

/// What one run of the `REAP` script did, or would do under `count_only`: the counts, and the
/// conversations whose lease it freed.
pub(super) struct ReapOutcome {
    pub reaped: Reaped,
    pub orphans: Vec<ConversationId>,
}

/// Reaps the nodes silent for longer than `silence` and the `departed` ones (see `REAP`).
pub(super) async fn run_reap(
    commands: &mut (impl ConnectionLike + Send),
    keys: &Keys,
    silence: Duration,
    departed: Vec<String>,
    count_only: bool,
) -> Result<ReapOutcome, CoordinationError> {
    let owner_gone = encode(&RoomEnvelope {
        skip: None,
        message: RoomMessage::OwnerGone,
    })?;
    let reply: Vec<String> = REAP
        .key(keys.nodes())
        .key(keys.handovers())
        .arg(millis(silence))
        .arg(keys.kind_prefix("owned"))
        .arg(keys.kind_prefix("lease"))
        .arg(keys.kind_prefix("watching"))
        .arg(keys.kind_prefix("presence"))
        .arg(keys.kind_prefix("room"))
        .arg(owner_gone)
        .arg(if count_only { "count" } else { "reap" })
        .arg(keys.kind_prefix("node"))
        .arg(encode(&NodeMessage::HandoversWaiting)?)
        .arg(departed)
        .invoke_async(commands)
        .await
        .map_err(unavailable)?;
    let [nodes, client_records, orphans @ ..] = reply.as_slice() else {
        return Err(corrupt(format!("unexpected reap reply {reply:?}")));
    };
    let orphans = orphans
        .iter()
        .map(|id| ConversationId::parse(id).map_err(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReapOutcome {
        reaped: Reaped {
            nodes: nodes.parse().map_err(corrupt)?,
            leases: orphans.len() as u64,
            client_records: client_records.parse().map_err(corrupt)?,
        },
        orphans,
    })
}

impl RedisCoordination {
    /// The other listed nodes whose channel has no subscriber, with their last heartbeat.
    async fn unheard_peers(&self) -> Result<Vec<(String, f64)>, CoordinationError> {
        let nodes: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.keys.nodes())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        let others: Vec<(String, f64)> = nodes
            .into_iter()
            .filter(|(node, _)| *node != self.node_id.as_str())
            .collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let mut numsub = redis::cmd("PUBSUB");
        numsub.arg("NUMSUB");
        for (node, _) in &others {
            numsub.arg(self.keys.node_channel(&NodeId::new(node)));
        }
        let listeners: Vec<(String, u64)> = numsub
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(others
            .into_iter()
            .zip(listeners)
            .filter(|(_, (_, count))| *count == 0)
            .map(|(peer, _)| peer)
            .collect())
    }

    /// The other listed nodes that are gone: their channel has no subscriber (a dead process's
    /// connection is closed, which Redis knows at once) and, a grace later, still none and no new
    /// heartbeat. A node whose pub/sub connection only blipped re-subscribes and beats within the grace
    /// (`pubsub.rs`), so one signal alone never reaps it.
    async fn departed_nodes(&self) -> Result<Vec<String>, CoordinationError> {
        let unheard = self.unheard_peers().await?;
        if unheard.is_empty() {
            return Ok(Vec::new());
        }
        tokio::time::sleep(self.settings.departure_grace).await;
        let still_unheard = self.unheard_peers().await?;
        Ok(unheard
            .into_iter()
            .filter(|suspect| still_unheard.contains(suspect))
            .map(|(node, _)| node)
            .collect())
    }
}

#[async_trait]
impl Liveness for RedisCoordination {
    fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    async fn beat(&self) -> Result<(), CoordinationError> {
        let unlisted = beat_as(&mut self.commands(), &self.keys, &self.node_id).await?;
        if unlisted && self.beaten.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // Reaped while alive (a long pause or partition): its leases are re-asserted or found
            // lost by the refresh (fencing); its clients must be announced again.
            tracing::warn!(node = %self.node_id, "this node had been reaped: rejoining");
            self.subscriptions.assert_presence().await?;
        }
        self.observe_replicas().await
    }

    async fn reap(&self, silence: Duration) -> Result<Vec<ConversationId>, CoordinationError> {
        let gone = self.departed_nodes().await?;
        let outcome = run_reap(&mut self.commands(), &self.keys, silence, gone, false).await?;
        Ok(outcome.orphans)
    }

    async fn check(&self) -> Result<(), CoordinationError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        if self.subscriptions.state.lock().await.sink.is_none() {
            return Err(CoordinationError::Unavailable(
                "redis pub/sub is reconnecting".into(),
            ));
        }
        Ok(())
    }
}
