//! The coordination contract: what every adapter of the coordination port shows, for nodes of one
//! cluster (the in-process `LocalCluster` and the Redis adapter), a file per concern of the port:
//! `leases` (rising epochs, TTLs, the per-user limit enforced atomically, re-assertion), `inbox`
//! (order, durability, trimming, client retries), `messaging` (directed and room messages, presence),
//! `liveness` (reaping the silent and the departed).

pub mod inbox;
pub mod leases;
pub mod liveness;
pub mod messaging;

use std::sync::Arc;
use std::time::Duration;

use shared::domain::ConversationId;
use shared::ports::Coordination;
use shared::ports::coordination::{ClaimOutcome, ClaimRequest, Incoming, Lease, LimitPolicy};
use tokio::sync::mpsc;

/// Every case of this suite as a test of one adapter, a module per concern of the port; `$make` is an
/// async fn of the invoking module taking a [`ClusterSpec`] and returning the [`Member`]s of a fresh
/// cluster.
#[macro_export]
macro_rules! coordination_contract {
    ($make:ident) => {
        $crate::coordination_contract!(@concern $make, leases, [
            claims_raise_the_epoch_and_honour_the_minimum,
            a_live_lease_is_held_against_other_nodes,
            an_expired_lease_is_lost_by_its_holder_and_claimable,
            refresh_keeps_held_leases_alive,
            the_limit_evicts_the_users_least_recently_active_and_counts_every_node,
            the_reject_policy_changes_nothing,
            concurrent_claims_have_one_winner,
            concurrent_claims_never_exceed_the_limit,
            a_stopped_release_frees_the_users_slot,
            a_handover_tells_the_other_nodes_and_lists_it,
            a_refresh_reasserts_a_lease_nobody_claimed_since,
            a_lapsed_lease_evicted_meanwhile_is_not_reasserted,
        ]);
        $crate::coordination_contract!(@concern $make, inbox, [
            the_inbox_is_ordered_durable_and_trimmed,
            a_push_tells_the_owner,
            a_retried_action_is_stored_once,
        ]);
        $crate::coordination_contract!(@concern $make, messaging, [
            directed_messages_reach_their_node,
            room_messages_reach_the_nodes_that_joined,
            presence_counts_clients_on_every_node,
        ]);
        $crate::coordination_contract!(@concern $make, liveness, [
            a_silent_node_is_reaped_once,
            a_departed_node_is_reaped_before_it_falls_silent,
        ]);
    };
    (@concern $make:ident, $concern:ident, [$($case:ident),+ $(,)?]) => {
        mod $concern {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::contract::coordination::$concern::$case(|spec| super::$make(spec)).await;
                }
            )+
        }
    };
}

/// The cluster a case needs.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSpec {
    pub nodes: usize,
    pub lease_ttl: Duration,
}

impl ClusterSpec {
    fn of(nodes: usize, lease_ttl: Duration) -> Self {
        Self { nodes, lease_ttl }
    }
}

/// One node of a cluster: its port and what it receives.
pub struct Member {
    pub coordination: Arc<dyn Coordination>,
    pub incoming: mpsc::Receiver<Incoming>,
}

/// How long a case waits for a message that must arrive.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a case waits to be sure a message does not arrive.
const SILENCE: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(30);

fn conversation(name: &str) -> ConversationId {
    ConversationId::parse(name).expect("a conversation id")
}

fn request(name: &str, user: &str, max_running: usize, policy: LimitPolicy) -> ClaimRequest {
    ClaimRequest {
        conversation: conversation(name),
        user_id: crate::user_id(user),
        max_running,
        policy,
        min_epoch: 1,
    }
}

async fn claimed(member: &Member, request: &ClaimRequest) -> (Lease, Vec<ConversationId>) {
    match member
        .coordination
        .claim(request)
        .await
        .expect("the backend answers")
    {
        ClaimOutcome::Claimed { lease, evicted } => (lease, evicted),
        other => panic!("expected a claim, got {other:?}"),
    }
}

async fn received(member: &mut Member) -> Incoming {
    tokio::time::timeout(PATIENCE, member.incoming.recv())
        .await
        .expect("a message within the patience")
        .expect("the node's channel is open")
}

async fn nothing_received(member: &mut Member) {
    if let Ok(message) = tokio::time::timeout(SILENCE, member.incoming.recv()).await {
        panic!("nothing expected, got {message:?}");
    }
}
