//! The inbox on Redis: a stream per conversation. The push script appends (once per client action id),
//! makes the conversation its user's most recently active and tells the lease's owner in the same step;
//! with replicas, the push is acknowledged only once `REDIS_ACK_REPLICAS` of them have it (`WAIT` in the
//! same pipeline, on the pushes' own connection), so that a failover right after cannot lose it. The
//! owner reads with `XRANGE` and trims with `XTRIM`.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use redis::{Role, Script};

use super::coordination::{AckReplicas, RedisCoordination, corrupt, encode, millis, unavailable};
use crate::domain::{ConversationId, InboxId, NodeId, UserAction};
use crate::ports::coordination::{CoordinationError, Inbox, InboxEntry, NodeMessage, Pushed};

/// The stream field holding an inbox entry's action.
const ACTION_FIELD: &str = "action";

/// KEYS: inbox, lease, activity (the counter ordering running sets), and the client action id's key
/// (when the client gave one). ARGV: the action's JSON, the node channels' prefix, the `InboxReady`
/// message, how long the client id is remembered (s), the running sets' prefix, the conversation.
/// Appends the action (once per client action id), makes the conversation its user's most recently
/// active (unless it is being evicted) and tells the lease's owner; returns `{id}` or `{id, owner}` if
/// one was told.
static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = KEYS[4] and redis.call('GET', KEYS[4])
if not id then
  id = redis.call('XADD', KEYS[1], '*', 'action', ARGV[1])
  if KEYS[4] then redis.call('SET', KEYS[4], id, 'EX', ARGV[4]) end
end
local lease = redis.call('HMGET', KEYS[2], 'owner', 'user')
if lease[2] then
  local running = ARGV[5] .. lease[2]
  local score = redis.call('ZSCORE', running, ARGV[6])
  if score and tonumber(score) > 0 then
    redis.call('ZADD', running, redis.call('INCR', KEYS[3]), ARGV[6])
  end
end
local owner = lease[1]
if owner and redis.call('PUBLISH', ARGV[2] .. owner, ARGV[3]) > 0 then
  return {id, owner}
end
return {id}
"#,
    )
});

impl RedisCoordination {
    /// Notes how many replicas the primary has (`ROLE`), for [`AckReplicas::Auto`]. Asked on the
    /// pushes' connection (every heartbeat), which also keeps it healed: an idle connection's first
    /// command after a Redis restart would fail, and that command would be a user's action.
    pub(super) async fn observe_replicas(&self) -> Result<(), CoordinationError> {
        let moves = self.pushes.moves();
        let role: Role = redis::cmd("ROLE")
            .query_async(&mut self.pushes.clone())
            .await
            .map_err(unavailable)?;
        let replicas = match role {
            Role::Primary { replicas, .. } => replicas.len(),
            _ => 0,
        };
        self.replicas.store(replicas, Ordering::Relaxed);
        self.replicas_seen_at_move.store(moves, Ordering::Release);
        Ok(())
    }

    /// How many replicas a push must reach before it is acknowledged.
    fn replicas_to_wait_for(&self) -> usize {
        match self.settings.ack_replicas {
            AckReplicas::Auto => self.replicas.load(Ordering::Relaxed).min(1),
            AckReplicas::Exactly(count) => count,
        }
    }
}

/// The first stream id after `id` (`<ms>-<seq>`), for exclusive trims.
fn next_inbox_id(id: &InboxId) -> Result<String, CoordinationError> {
    id.stream_parts()
        .map(|(ms, seq)| format!("{ms}-{}", seq + 1))
        .ok_or_else(|| corrupt(format!("inbox id {id} is not <ms>-<seq>")))
}

#[async_trait]
impl Inbox for RedisCoordination {
    async fn push_action(
        &self,
        conversation: &ConversationId,
        action: &UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Pushed, CoordinationError> {
        let ready = encode(&NodeMessage::InboxReady {
            conversation: conversation.clone(),
        })?;
        let mut invocation = PUSH.key(self.keys.inbox(conversation));
        invocation
            .key(self.keys.lease(conversation))
            .key(self.keys.claims())
            .arg(encode(action)?)
            .arg(self.keys.kind_prefix("node"))
            .arg(ready)
            .arg(self.settings.retention.as_secs().max(1))
            .arg(self.keys.kind_prefix("running"))
            .arg(conversation.as_str());
        if let Some(client_id) = client_action_id {
            invocation.key(self.keys.client_action(conversation, client_id));
        }
        if self.replicas_seen_at_move.load(Ordering::Acquire) != self.pushes.moves() {
            // A new primary: its replicas are not the old one's.
            self.observe_replicas().await?;
        }
        let replicas = self.replicas_to_wait_for();
        let reply: Vec<String> = if replicas == 0 {
            invocation
                .invoke_async(&mut self.pushes.clone())
                .await
                .map_err(unavailable)?
        } else {
            // The push and its `WAIT` in one pipeline: `WAIT` counts the writes of its own connection,
            // which a reconnect between two round trips would reset (a false acknowledgement).
            let mut pushes = self.pushes.clone();
            let mut pipeline = redis::pipe();
            pipeline
                .invoke_script(&invocation)
                .cmd("WAIT")
                .arg(replicas)
                .arg(millis(self.settings.ack_timeout));
            let (reply, acked): (Vec<String>, usize) = match pipeline.query_async(&mut pushes).await
            {
                Err(error)
                    if error.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    invocation
                        .load_async(&mut pushes)
                        .await
                        .map_err(unavailable)?;
                    pipeline
                        .query_async(&mut pushes)
                        .await
                        .map_err(unavailable)?
                }
                other => other.map_err(unavailable)?,
            };
            // `auto` waits for the replicas the primary has: after a failover left it alone, none.
            if acked < replicas
                && !(self.observe_replicas().await.is_ok() && acked >= self.replicas_to_wait_for())
            {
                return Err(CoordinationError::Unavailable(format!(
                    "the action reached {acked} of {replicas} replicas within {} ms: not acknowledged",
                    self.settings.ack_timeout.as_millis()
                )));
            }
            reply
        };
        match reply.as_slice() {
            [id] => Ok(Pushed {
                id: InboxId(id.clone()),
                owner: None,
            }),
            [id, owner] => Ok(Pushed {
                id: InboxId(id.clone()),
                owner: Some(NodeId::new(owner)),
            }),
            other => Err(corrupt(format!("unexpected push reply {other:?}"))),
        }
    }

    async fn read_inbox(
        &self,
        conversation: &ConversationId,
        after: Option<&InboxId>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, CoordinationError> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.keys.inbox(conversation))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let json = fields
                    .chunks(2)
                    .find(|pair| pair[0] == ACTION_FIELD)
                    .and_then(|pair| pair.get(1))
                    .ok_or_else(|| corrupt(format!("inbox entry {id} has no action")))?;
                Ok(InboxEntry {
                    action: serde_json::from_str(json).map_err(corrupt)?,
                    id: InboxId(id),
                })
            })
            .collect()
    }

    async fn trim_inbox(
        &self,
        conversation: &ConversationId,
        through: &InboxId,
    ) -> Result<(), CoordinationError> {
        redis::cmd("XTRIM")
            .arg(self.keys.inbox(conversation))
            .arg("MINID")
            .arg(next_inbox_id(through)?)
            .query_async::<u64>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_stop_after_the_given_id() {
        let next = next_inbox_id(&InboxId("1700000000000-4".into())).unwrap();
        assert_eq!(next, "1700000000000-5");
        assert!(next_inbox_id(&InboxId("garbage".into())).is_err());
    }
}
