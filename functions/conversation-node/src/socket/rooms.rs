//! The Socket.IO clients of each conversation on this node, and what each has been sent.
//!
//! A client's feed is registered, then the node joins the conversation's room, then the stored events
//! after the client's `latest_event_id` are replayed. Room events arriving meanwhile wait in the feed;
//! once the replay is done they are sent in id order, skipping what the replay covered. Live events
//! are then sent in order with duplicates dropped; a gap (a room message lost) is filled from the store.
//!
//! A client that reads slower than its events come fills its connection's queue: the feed's cursor
//! stays at the last event queued, the feed stops sending live, and a catch-up task replays from the
//! store once the queue has drained. A client that makes no progress for [`CATCH_UP_LIMIT`] is
//! disconnected; it reconnects with its `latest_event_id` and misses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use shared::domain::{ConversationEvent, ConversationId, StatusUpdate};
use shared::ports::{EventStore, StoreError};
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use tokio::time::Instant;

/// The Socket.IO event every server message travels in.
pub(crate) const OH_EVENT: &str = "oh_event";
/// Events read per store call during a replay or a gap fill.
const REPLAY_PAGE: usize = 100;
/// How long a catch-up waits for the connection's queue to drain before it sends again.
const CATCH_UP_PAUSE: Duration = Duration::from_millis(20);
/// How long a client may make no progress before it is disconnected.
pub(crate) const CATCH_UP_LIMIT: Duration = Duration::from_secs(10);

struct FeedState {
    /// The id of the next event the client needs: everything before it was sent. `u64` from the
    /// client's `latest_event_id + 1`, so that no client-chosen number takes part in signed arithmetic.
    next: u64,
    live: bool,
    waiting: Vec<ConversationEvent>,
}

/// Whether everything was queued for the client, or its connection's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    All,
    Behind,
}

pub(crate) struct Feed {
    pub sid: Sid,
    pub conversation: ConversationId,
    socket: SocketRef,
    state: tokio::sync::Mutex<FeedState>,
}

impl Feed {
    /// A feed that sends the events from id `next` on.
    pub(crate) fn new(socket: SocketRef, conversation: ConversationId, next: u64) -> Self {
        Self {
            sid: socket.id,
            conversation,
            socket,
            state: tokio::sync::Mutex::new(FeedState {
                next,
                live: false,
                waiting: Vec::new(),
            }),
        }
    }

    /// Sends a message that is not a stored event (a status, an error): best effort.
    pub(crate) fn emit(&self, payload: &impl Serialize) {
        if let Err(error) = self.socket.emit(OH_EVENT, payload) {
            tracing::debug!(sid = %self.sid, reason = %error, "cannot send to a client");
        }
    }

    /// Queues a stored event for the client. A closed connection counts as sent: nobody waits for it.
    fn send(&self, event: &ConversationEvent) -> Sent {
        match self.socket.emit(OH_EVENT, event) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Sent::Behind,
            Err(error) => {
                tracing::debug!(sid = %self.sid, reason = %error, "cannot send to a client");
                Sent::All
            }
            Ok(()) => Sent::All,
        }
    }

    /// Sends the stored events after the client's cursor, then the ones that arrived meanwhile, and
    /// goes live; a client that falls behind on the way is caught up from the store later.
    pub(crate) async fn replay(
        self: &Arc<Self>,
        store: &Arc<dyn EventStore>,
    ) -> Result<(), StoreError> {
        if self.replay_once(store.as_ref()).await? == Sent::Behind {
            self.catch_up(store, CATCH_UP_PAUSE);
        }
        Ok(())
    }

    async fn replay_once(&self, store: &dyn EventStore) -> Result<Sent, StoreError> {
        let from = self.state.lock().await.next;
        let (next, mut sent) = self.send_stored(store, from, None).await?;
        let mut state = self.state.lock().await;
        state.next = next;
        // What waits is stored too: a client still behind reads it from the store on the next round.
        let waiting = std::mem::take(&mut state.waiting);
        if sent == Sent::All {
            for event in waiting {
                sent = self.send_in_order(&mut state, store, event).await;
                if sent == Sent::Behind {
                    break;
                }
            }
        }
        state.live = sent == Sent::All;
        Ok(sent)
    }

    /// Replays from the store, after `first_pause` (none for a gap; a client whose buffer is full
    /// first needs time to read) and then every [`CATCH_UP_PAUSE`], until the client has everything,
    /// or disconnects it after [`CATCH_UP_LIMIT`] without progress. The task lives no longer than its
    /// socket: a disconnect (the node's shutdown closes every socket) ends it.
    fn catch_up(self: &Arc<Self>, store: &Arc<dyn EventStore>, first_pause: Duration) {
        let (feed, store) = (Arc::clone(self), Arc::clone(store));
        tokio::spawn(async move {
            let mut progress = (feed.state.lock().await.next, Instant::now());
            let mut pause = first_pause;
            loop {
                tokio::time::sleep(pause).await;
                pause = CATCH_UP_PAUSE;
                if !feed.socket.connected() {
                    return;
                }
                match feed.replay_once(store.as_ref()).await {
                    Ok(Sent::All) => return,
                    Ok(Sent::Behind) => {}
                    Err(error) => {
                        tracing::warn!(conversation_id = %feed.conversation, reason = %error, "cannot catch a client up");
                    }
                }
                let next = feed.state.lock().await.next;
                if next > progress.0 {
                    progress = (next, Instant::now());
                } else if progress.1.elapsed() >= CATCH_UP_LIMIT {
                    tracing::info!(sid = %feed.sid, "a client reads nothing: disconnected");
                    let _ = feed.socket.clone().disconnect();
                    return;
                }
            }
        });
    }

    /// Offers a room event: kept while the replay runs, sent in order afterwards.
    pub(crate) async fn offer(
        self: &Arc<Self>,
        store: &Arc<dyn EventStore>,
        event: ConversationEvent,
    ) {
        let mut state = self.state.lock().await;
        if !state.live {
            state.waiting.push(event);
        } else if event.id > state.next {
            // A gap (an owner that died between its append and its publish, a message missed while
            // resubscribing): filled from the store in the background, the event kept meanwhile, so
            // that the node's dispatcher never waits on the store.
            state.live = false;
            state.waiting.push(event);
            drop(state);
            self.catch_up(store, Duration::ZERO);
        } else if self.send_in_order(&mut state, store.as_ref(), event).await == Sent::Behind {
            state.live = false;
            drop(state);
            self.catch_up(store, CATCH_UP_PAUSE);
        }
    }

    async fn send_in_order(
        &self,
        state: &mut FeedState,
        store: &dyn EventStore,
        event: ConversationEvent,
    ) -> Sent {
        let id = event.id;
        if id < state.next {
            return Sent::All;
        }
        if id > state.next {
            match self.send_stored(store, state.next, Some(id)).await {
                Ok((next, sent)) => {
                    state.next = next;
                    if sent == Sent::Behind {
                        return Sent::Behind;
                    }
                }
                Err(error) => {
                    tracing::warn!(conversation_id = %self.conversation, reason = %error, "cannot fill a gap from the store");
                }
            }
        }
        let sent = self.send(&event);
        if sent == Sent::All {
            state.next = id.saturating_add(1);
        }
        sent
    }

    /// Sends the stored events from id `next` on (and before `until`); returns the id after the last
    /// event queued.
    async fn send_stored(
        &self,
        store: &dyn EventStore,
        mut next: u64,
        until: Option<u64>,
    ) -> Result<(u64, Sent), StoreError> {
        loop {
            let page = store.page(&self.conversation, next, REPLAY_PAGE).await?;
            for event in &page.events {
                if until.is_some_and(|until| event.id >= until) {
                    return Ok((next, Sent::All));
                }
                if self.send(event) == Sent::Behind {
                    return Ok((next, Sent::Behind));
                }
                next = event.id.saturating_add(1);
            }
            if !page.has_more || page.events.is_empty() {
                return Ok((next, Sent::All));
            }
        }
    }
}

/// The feeds of each conversation with clients on this node.
#[derive(Default)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<ConversationId, Vec<Arc<Feed>>>>,
}

impl Rooms {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConversationId, Vec<Arc<Feed>>>> {
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add(&self, feed: Arc<Feed>) {
        self.lock()
            .entry(feed.conversation.clone())
            .or_default()
            .push(feed);
    }

    pub(crate) fn remove(&self, conversation: &ConversationId, sid: Sid) {
        let mut rooms = self.lock();
        if let Some(feeds) = rooms.get_mut(conversation) {
            feeds.retain(|feed| feed.sid != sid);
            if feeds.is_empty() {
                rooms.remove(conversation);
            }
        }
    }

    fn feeds(&self, conversation: &ConversationId) -> Vec<Arc<Feed>> {
        self.lock().get(conversation).cloned().unwrap_or_default()
    }

    pub(crate) async fn deliver(
        &self,
        store: &Arc<dyn EventStore>,
        conversation: &ConversationId,
        event: ConversationEvent,
    ) {
        for feed in self.feeds(conversation) {
            feed.offer(store, event.clone()).await;
        }
    }

    pub(crate) fn status(&self, conversation: &ConversationId, status: &StatusUpdate) {
        for feed in self.feeds(conversation) {
            feed.emit(status);
        }
    }
}
