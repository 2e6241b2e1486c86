//! Every Redis key and channel the clustered node uses, in one place. All names start with a
//! configurable prefix (`REDIS_KEY_PREFIX`, default `cn:`), so that tests and several deployments can
//! share one Redis.
//!
//! | Name | Type | Content | Lifetime |
//! |---|---|---|---|
//! | `{p}lease:{conversation}` | hash | `owner` (node id), `epoch`, `user` | `PEXPIRE` lease TTL, refreshed by the owner |
//! | `{p}epoch:{conversation}` | string | the last epoch granted (`INCR`) | while the conversation runs; `PEXPIRE` retention once it stopped (the event store's fence guards its loss) |
//! | `{p}claims` | string | a counter ordering activity (the score of `running`) | kept |
//! | `{p}running:{user}` | sorted set | the user's running conversations, scored by last activity (a claim, a user action); negated while being evicted | members leave on a stopped release (an evicted one once stopped); the owners' refresh restores them after Redis lost its data; the cleanup removes a stale one |
//! | `{p}handovers` | sorted set | conversations handed over by a leaving node or freed by a reaper, not yet taken | members leave when a node takes them |
//! | `{p}owned:{node}` | set | the conversations a node holds leases of | members leave on release |
//! | `{p}inbox:{conversation}` | stream | user actions (`action` = JSON), ids `<ms>-<seq>` | trimmed by the owner once recorded; deleted (empty) or `PEXPIRE` retention once stopped |
//! | `{p}action:{conversation}:{client action id}` | string | the inbox id a client's action was stored as | `EX` retention (`REDIS_RETENTION`, a day) |
//! | `{p}presence:{conversation}` | hash | node id -> how many clients of the conversation it has | a field leaves with the node's last client, or when the node is reaped |
//! | `{p}watching:{node}` | set | the conversations a node has clients of (to forget them when it is reaped) | members leave with the last client |
//! | `{p}nodes` | sorted set | node ids scored by their last heartbeat (Redis time, ms) | members leave when reaped (by a node, or by the cleanup when none is left) |
//! | `{p}node:{node}` | channel | directed messages for one node (JSON `NodeMessage`: `InboxReady`, `HandoversWaiting`, owner requests and replies) | - |
//! | `{p}room:{conversation}` | channel | room messages for every node with a client (JSON) | - |
//!
//! No key is ever found by pattern: every path names the keys it touches (no walk of the key space).

use crate::domain::NodeId;
use crate::domain::{ConversationId, UserId};

/// The names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub const DEFAULT_PREFIX: &'static str = "cn:";

    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn lease(&self, conversation: &ConversationId) -> String {
        format!("{}{}", self.kind_prefix("lease"), conversation.as_str())
    }

    pub fn epoch(&self, conversation: &ConversationId) -> String {
        format!("{}epoch:{}", self.prefix, conversation.as_str())
    }

    pub fn claims(&self) -> String {
        format!("{}claims", self.prefix)
    }

    pub fn running(&self, user_id: &UserId) -> String {
        format!("{}running:{user_id}", self.prefix)
    }

    pub fn owned(&self, node: &NodeId) -> String {
        format!("{}owned:{node}", self.prefix)
    }

    pub fn inbox(&self, conversation: &ConversationId) -> String {
        format!("{}inbox:{}", self.prefix, conversation.as_str())
    }

    pub fn client_action(&self, conversation: &ConversationId, client_action_id: &str) -> String {
        format!(
            "{}action:{}:{client_action_id}",
            self.prefix,
            conversation.as_str()
        )
    }

    pub fn presence(&self, conversation: &ConversationId) -> String {
        format!("{}presence:{}", self.prefix, conversation.as_str())
    }

    pub fn watching(&self, node: &NodeId) -> String {
        format!("{}watching:{node}", self.prefix)
    }

    pub fn handovers(&self) -> String {
        format!("{}handovers", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// The prefix of every key or channel of one kind (`lease:`, `owned:`, ...), for scripts that
    /// derive names from ids they read.
    pub fn kind_prefix(&self, kind: &str) -> String {
        format!("{}{kind}:", self.prefix)
    }

    pub fn node_channel(&self, node: &NodeId) -> String {
        format!("{}{node}", self.kind_prefix("node"))
    }

    pub fn room_channel(&self, conversation: &ConversationId) -> String {
        format!("{}room:{}", self.prefix, conversation.as_str())
    }

    /// The conversation of a room channel's name, if it is one.
    pub fn room_of(&self, channel: &str) -> Option<ConversationId> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix("room:")?;
        ConversationId::parse(rest).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_channels_name_their_conversation() {
        let keys = Keys::new("t1:");
        let conversation = ConversationId::parse("abc").unwrap();
        let channel = keys.room_channel(&conversation);
        assert_eq!(channel, "t1:room:abc");
        assert_eq!(keys.room_of(&channel), Some(conversation.clone()));
        assert_eq!(keys.room_of("t1:node:abc"), None);
        assert_eq!(keys.room_of("t2:room:abc"), None);
        // The reaper derives names from prefixes: they must agree with the named keys.
        let node = NodeId::new("n1");
        assert_eq!(
            format!("{}n1", keys.kind_prefix("owned")),
            keys.owned(&node)
        );
        assert_eq!(
            format!("{}abc", keys.kind_prefix("lease")),
            keys.lease(&conversation)
        );
        assert_eq!(
            format!("{}n1", keys.kind_prefix("watching")),
            keys.watching(&node)
        );
        assert_eq!(
            format!("{}abc", keys.kind_prefix("presence")),
            keys.presence(&conversation)
        );
        assert_eq!(format!("{}abc", keys.kind_prefix("room")), channel);
    }
}
