//! The inbox on Redis: a stream per conversation. The push script appends (once per client action id)
//! and tells the lease's owner in the same step; the owner reads with `XRANGE` and trims with `XTRIM`.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;

use super::coordination::{RedisCoordination, corrupt, encode, unavailable};
use crate::domain::{ConversationId, InboxId, NodeId, UserAction};
use crate::ports::coordination::{
    ACTION_ID_MEMORY, CoordinationError, Inbox, InboxEntry, NodeMessage, Pushed,
};

/// The stream field holding an inbox entry's action.
const ACTION_FIELD: &str = "action";

/// KEYS: inbox, lease, and the client action id's key (when the client gave one). ARGV: the action's
/// JSON, the node channels' prefix, the `InboxReady` message, how long the client id is remembered (s).
/// Appends the action (once per client action id) and tells the lease's owner; returns `{id}` or
/// `{id, owner}` if one was told.
static PUSH: LazyLock<Script> = LazyLock::new(|| {
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
            .arg(encode(action)?)
            .arg(self.keys.kind_prefix("node"))
            .arg(ready)
            .arg(ACTION_ID_MEMORY.as_secs());
        if let Some(client_id) = client_action_id {
            invocation.key(self.keys.client_action(conversation, client_id));
        }
        let reply: Vec<String> = invocation
            .invoke_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
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
