//! The Socket.IO clients of each conversation on this node, and what each has been sent.
//!
//! A client's feed is registered, then the node joins the conversation's room, then the stored events
//! after the client's `latest_event_id` are replayed. Room events arriving meanwhile wait in the feed;
//! once the replay is done they are sent in id order, skipping what the replay covered. Live events
//! are then sent in order with duplicates dropped; a gap (a room message lost) is filled from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use shared::domain::{ConversationEvent, ConversationId, StatusUpdate};
use shared::ports::{EventStore, StoreError};
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

/// The Socket.IO event every server message travels in.
pub const OH_EVENT: &str = "oh_event";
/// Events read per store call during a replay or a gap fill.
const REPLAY_PAGE: usize = 100;

struct FeedState {
    /// The last event id sent (-1: none).
    cursor: i64,
    live: bool,
    waiting: Vec<ConversationEvent>,
}

pub struct Feed {
    pub sid: Sid,
    pub conversation: ConversationId,
    socket: SocketRef,
    state: tokio::sync::Mutex<FeedState>,
}

impl Feed {
    pub fn new(socket: SocketRef, conversation: ConversationId, latest_event_id: i64) -> Self {
        Self {
            sid: socket.id,
            conversation,
            socket,
            state: tokio::sync::Mutex::new(FeedState {
                cursor: latest_event_id,
                live: false,
                waiting: Vec::new(),
            }),
        }
    }

    pub fn emit(&self, payload: &impl Serialize) {
        if let Err(error) = self.socket.emit(OH_EVENT, payload) {
            tracing::debug!(sid = %self.sid, reason = %error, "cannot send to a client");
        }
    }

    /// Sends the stored events after the client's cursor, then the ones that arrived meanwhile, and
    /// goes live.
    pub async fn replay(&self, store: &dyn EventStore) -> Result<(), StoreError> {
        let mut cursor = self.state.lock().await.cursor;
        cursor = self.send_stored(store, cursor, None).await?;
        let mut state = self.state.lock().await;
        state.cursor = cursor;
        let waiting = std::mem::take(&mut state.waiting);
        for event in waiting {
            self.send_in_order(&mut state, store, event).await;
        }
        state.live = true;
        Ok(())
    }

    /// Offers a room event: kept while the replay runs, sent in order afterwards.
    pub async fn offer(&self, store: &dyn EventStore, event: ConversationEvent) {
        let mut state = self.state.lock().await;
        if state.live {
            self.send_in_order(&mut state, store, event).await;
        } else {
            state.waiting.push(event);
        }
    }

    async fn send_in_order(
        &self,
        state: &mut FeedState,
        store: &dyn EventStore,
        event: ConversationEvent,
    ) {
        let id = event.id as i64;
        if id <= state.cursor {
            return;
        }
        if id > state.cursor + 1 {
            match self.send_stored(store, state.cursor, Some(id)).await {
                Ok(cursor) => state.cursor = cursor,
                Err(error) => {
                    tracing::warn!(conversation_id = %self.conversation, reason = %error, "cannot fill a gap from the store");
                }
            }
        }
        self.emit(&event);
        state.cursor = id;
    }

    /// Sends stored events with ids after `cursor` (and before `until`); returns the new cursor.
    async fn send_stored(
        &self,
        store: &dyn EventStore,
        mut cursor: i64,
        until: Option<i64>,
    ) -> Result<i64, StoreError> {
        loop {
            let start = (cursor + 1) as u64;
            let page = store.page(&self.conversation, start, REPLAY_PAGE).await?;
            for event in &page.events {
                if until.is_some_and(|until| event.id as i64 >= until) {
                    return Ok(cursor);
                }
                self.emit(event);
                cursor = event.id as i64;
            }
            if !page.has_more || page.events.is_empty() {
                return Ok(cursor);
            }
        }
    }
}

/// The feeds of each conversation with clients on this node.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<ConversationId, Vec<Arc<Feed>>>>,
}

impl Rooms {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConversationId, Vec<Arc<Feed>>>> {
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add(&self, feed: Arc<Feed>) {
        self.lock()
            .entry(feed.conversation.clone())
            .or_default()
            .push(feed);
    }

    pub fn remove(&self, conversation: &ConversationId, sid: Sid) {
        let mut rooms = self.lock();
        if let Some(feeds) = rooms.get_mut(conversation) {
            feeds.retain(|feed| feed.sid != sid);
            if feeds.is_empty() {
                rooms.remove(conversation);
            }
        }
    }

    pub fn has_clients(&self, conversation: &ConversationId) -> bool {
        self.lock().contains_key(conversation)
    }

    fn feeds(&self, conversation: &ConversationId) -> Vec<Arc<Feed>> {
        self.lock().get(conversation).cloned().unwrap_or_default()
    }

    pub async fn deliver(
        &self,
        store: &dyn EventStore,
        conversation: &ConversationId,
        event: ConversationEvent,
    ) {
        for feed in self.feeds(conversation) {
            feed.offer(store, event.clone()).await;
        }
    }

    pub fn status(&self, conversation: &ConversationId, status: &StatusUpdate) {
        for feed in self.feeds(conversation) {
            feed.emit(status);
        }
    }
}
