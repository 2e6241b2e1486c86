//! The in-process inbox: ids of the stream form `<unix ms>-<seq>`, client action ids remembered.

use async_trait::async_trait;
use tokio::time::Instant;

use super::{LocalNode, deliver};
use crate::domain::{ConversationId, InboxId, UserAction};
use crate::ports::coordination::{
    CoordinationError, Inbox, InboxEntry, Incoming, NodeMessage, Pushed,
};

fn inbox_id((millis, seq): (u64, u64)) -> InboxId {
    InboxId(format!("{millis}-{seq}"))
}

fn parse_inbox_id(id: &InboxId) -> Result<(u64, u64), CoordinationError> {
    id.stream_parts()
        .ok_or_else(|| CoordinationError::Corrupt(format!("inbox id {id} is not <ms>-<seq>")))
}

#[async_trait]
impl Inbox for LocalNode {
    async fn push_action(
        &self,
        conversation: &ConversationId,
        action: &UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Pushed, CoordinationError> {
        let now_millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let (id, owner) = {
            let mut state = self.cluster.lock();
            let inbox = state.inboxes.entry(conversation.clone()).or_default();
            let retried = client_action_id.and_then(|client_id| inbox.client_ids.get(client_id));
            let id = match retried {
                Some(first) => *first,
                None => {
                    let id = if now_millis > inbox.last.0 {
                        (now_millis, 0)
                    } else {
                        (inbox.last.0, inbox.last.1 + 1)
                    };
                    inbox.last = id;
                    inbox.entries.push_back((id, action.clone()));
                    if let Some(client_id) = client_action_id {
                        inbox.client_ids.insert(client_id.to_owned(), id);
                    }
                    id
                }
            };
            state.touch(conversation);
            let owner = state
                .live_owner(conversation, Instant::now())
                .cloned()
                .and_then(|owner| state.sender(&owner).map(|sender| (owner, sender)));
            (id, owner)
        };
        let owner = match owner {
            Some((owner, sender)) => {
                let ready = Incoming::Node(NodeMessage::InboxReady {
                    conversation: conversation.clone(),
                });
                deliver(sender, ready).await.then_some(owner)
            }
            None => None,
        };
        Ok(Pushed {
            id: inbox_id(id),
            owner,
        })
    }

    async fn read_inbox(
        &self,
        conversation: &ConversationId,
        after: Option<&InboxId>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, CoordinationError> {
        let after = after.map(parse_inbox_id).transpose()?;
        let state = self.cluster.lock();
        let Some(inbox) = state.inboxes.get(conversation) else {
            return Ok(Vec::new());
        };
        Ok(inbox
            .entries
            .iter()
            .filter(|(id, _)| after.is_none_or(|after| *id > after))
            .take(limit.max(1))
            .map(|(id, action)| InboxEntry {
                id: inbox_id(*id),
                action: action.clone(),
            })
            .collect())
    }

    async fn trim_inbox(
        &self,
        conversation: &ConversationId,
        through: &InboxId,
    ) -> Result<(), CoordinationError> {
        let through = parse_inbox_id(through)?;
        let mut state = self.cluster.lock();
        if let Some(inbox) = state.inboxes.get_mut(conversation) {
            inbox.entries.retain(|(id, _)| *id > through);
        }
        Ok(())
    }
}
