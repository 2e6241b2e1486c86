//! Leases on the in-process cluster: epochs that only rise, TTLs, the user's running set in activity
//! order, the hand-over list.

use async_trait::async_trait;
use tokio::time::Instant;

use super::{LeaseRecord, LocalNode, deliver};
use crate::domain::{ConversationId, UserId};
use crate::ports::coordination::{
    ClaimOutcome, ClaimRequest, CoordinationError, Incoming, Lease, LeaseEnd, Leases, LimitPolicy,
    NodeMessage, RoomMessage,
};

#[async_trait]
impl Leases for LocalNode {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, CoordinationError> {
        let now = Instant::now();
        let mut state = self.cluster.lock();
        if let Some(owner) = state.live_owner(&request.conversation, now)
            && *owner != self.node_id
        {
            return Ok(ClaimOutcome::Held {
                owner: owner.clone(),
            });
        }
        let super::ClusterState {
            running, evicting, ..
        } = &mut *state;
        let running = running.entry(request.user_id.clone()).or_default();
        let mut evicted = Vec::new();
        let holds_a_place =
            running.contains(&request.conversation) && !evicting.contains(&request.conversation);
        if !holds_a_place {
            let room = request.max_running.max(1) - 1;
            let active: Vec<&ConversationId> =
                running.iter().filter(|c| !evicting.contains(*c)).collect();
            if active.len() > room {
                if request.policy == LimitPolicy::Reject {
                    return Ok(ClaimOutcome::LimitReached);
                }
                evicted = active[..active.len() - room]
                    .iter()
                    .map(|c| (*c).clone())
                    .collect();
                evicting.extend(evicted.iter().cloned());
            }
        }
        running.retain(|c| *c != request.conversation);
        running.push(request.conversation.clone());
        evicting.remove(&request.conversation);
        let epoch = state
            .epochs
            .get(&request.conversation)
            .map_or(1, |epoch| epoch + 1)
            .max(request.min_epoch);
        state.epochs.insert(request.conversation.clone(), epoch);
        state.leases.insert(
            request.conversation.clone(),
            LeaseRecord {
                owner: self.node_id.clone(),
                epoch,
                user_id: request.user_id.clone(),
                expires_at: now + self.cluster.lease_ttl,
            },
        );
        Ok(ClaimOutcome::Claimed {
            lease: Lease {
                conversation: request.conversation.clone(),
                user_id: request.user_id.clone(),
                owner: self.node_id.clone(),
                epoch,
            },
            evicted,
        })
    }

    async fn refresh(&self, leases: &[Lease]) -> Result<Vec<ConversationId>, CoordinationError> {
        let now = Instant::now();
        let mut state = self.cluster.lock();
        let mut lost = Vec::new();
        for lease in leases {
            let held = state.leases.get(&lease.conversation).is_some_and(|record| {
                record.owner == self.node_id
                    && record.epoch == lease.epoch
                    && record.expires_at > now
            });
            let gone = state.live_owner(&lease.conversation, now).is_none();
            let nobody_claimed_since = state
                .epochs
                .get(&lease.conversation)
                .is_none_or(|epoch| *epoch <= lease.epoch);
            // Not evicted meanwhile (this cluster never forgets its running sets, unlike a Redis
            // restarted empty).
            let counted = !state.evicting.contains(&lease.conversation)
                && state
                    .running
                    .get(&lease.user_id)
                    .is_some_and(|running| running.contains(&lease.conversation));
            if held || (gone && nobody_claimed_since && counted) {
                // Re-asserted when it expired unclaimed, as the Redis adapter does.
                state.leases.insert(
                    lease.conversation.clone(),
                    LeaseRecord {
                        owner: self.node_id.clone(),
                        epoch: lease.epoch,
                        user_id: lease.user_id.clone(),
                        expires_at: now + self.cluster.lease_ttl,
                    },
                );
            } else {
                lost.push(lease.conversation.clone());
            }
        }
        Ok(lost)
    }

    async fn release(&self, lease: &Lease, end: LeaseEnd) -> Result<(), CoordinationError> {
        let now = Instant::now();
        let recipients = {
            let mut state = self.cluster.lock();
            let held = state
                .leases
                .get(&lease.conversation)
                .is_some_and(|record| record.owner == self.node_id && record.epoch == lease.epoch);
            if held {
                state.leases.remove(&lease.conversation);
            }
            let someone_else_runs_it = state.live_owner(&lease.conversation, now).is_some();
            match end {
                LeaseEnd::Stopped if !someone_else_runs_it => {
                    state.forget(&lease.conversation, &lease.user_id);
                    Vec::new()
                }
                LeaseEnd::HandedOver if held => {
                    state.handovers.push_back(lease.conversation.clone());
                    let with_clients = state
                        .rooms
                        .get(&lease.conversation)
                        .into_iter()
                        .flat_map(|room| room.iter())
                        .filter(|(node, connections)| {
                            **node != self.node_id && !connections.is_empty()
                        })
                        .filter_map(|(node, _)| state.sender(node))
                        .map(|sender| {
                            let gone = Incoming::Room {
                                conversation: lease.conversation.clone(),
                                message: RoomMessage::OwnerGone,
                            };
                            (sender, gone)
                        });
                    let others = state
                        .nodes
                        .iter()
                        .filter(|(node, _)| **node != self.node_id)
                        .map(|(_, sender)| {
                            let waiting = Incoming::Node(NodeMessage::HandoversWaiting);
                            (sender.clone(), waiting)
                        });
                    with_clients.chain(others).collect()
                }
                _ => Vec::new(),
            }
        };
        for (sender, message) in recipients {
            deliver(sender, message).await;
        }
        Ok(())
    }

    async fn forget_stopped(
        &self,
        conversation: &ConversationId,
        user_id: &UserId,
    ) -> Result<(), CoordinationError> {
        let mut state = self.cluster.lock();
        if state.live_owner(conversation, Instant::now()).is_none() {
            state.forget(conversation, user_id);
        }
        Ok(())
    }

    async fn take_handed_over(
        &self,
        limit: usize,
    ) -> Result<Vec<ConversationId>, CoordinationError> {
        let mut state = self.cluster.lock();
        let count = limit.max(1).min(state.handovers.len());
        Ok(state.handovers.drain(..count).collect())
    }
}
