//! The node's periodic work, apart from what users ask for ([`crate::lifecycle`]):
//! - the heartbeat refreshes this node's leases and ends the loops whose lease is lost (or that could
//!   not be refreshed for nearly a TTL) and records this node's liveness;
//! - between heartbeats the peer check takes over the conversations of dead nodes;
//! - the sweep stops idle conversations with no client anywhere, and forgets idle action-rate keys.

use std::sync::Arc;
use std::time::Duration;

use shared::domain::AgentState;
use shared::ports::coordination::StopReason;
use tokio::time::{Instant, MissedTickBehavior};

use crate::lifecycle::take_over;
use crate::metrics::inc;
use crate::sessions::Control;
use crate::state::Node;

/// Refreshes this node's leases every heartbeat, ending the loops whose lease is gone. When refreshes
/// fail for so long that the leases may expire before the next one, every loop ends (fencing: better no
/// owner for a moment than two). Between heartbeats, every peer check takes over the conversations of
/// dead nodes: those whose connection Redis shows gone (a crash, seen at once) and those silent for two
/// heartbeats (well within a lease TTL); the reaper frees their leases at once, and every node with
/// their clients is told as well.
pub async fn heartbeat(node: Node) {
    let every = node.timing.heartbeat;
    let silence = every * 2;
    let mut beats = tokio::time::interval(every);
    beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut peer_checks = tokio::time::interval(node.timing.peer_check);
    peer_checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_refresh = Instant::now();
    let mut last_beat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = beats.tick() => {
                last_refresh = refresh_leases(&node, last_refresh).await;
                if node.is_shutting_down() {
                    continue;
                }
                match node.coordination.beat().await {
                    Ok(()) => last_beat = Some(Instant::now()),
                    Err(error) => tracing::warn!(reason = %error, "liveness could not be recorded"),
                }
            }
            _ = peer_checks.tick() => {
                // A node whose own beat is stale (Redis was away, the process starved) would reap
                // itself: it waits for its next beat.
                if !node.is_shutting_down() && last_beat.is_some_and(|at| at.elapsed() < silence) {
                    reap_dead_nodes(&node, silence).await;
                }
            }
        }
    }
}

/// One refresh of this node's leases; returns when the leases were last known refreshed.
async fn refresh_leases(node: &Node, last_refresh: Instant) -> Instant {
    let (every, ttl) = (node.timing.heartbeat, node.timing.lease_ttl);
    let handles = node.sessions.running();
    let leases: Vec<_> = handles.iter().map(|handle| handle.lease.clone()).collect();
    let (lost, refreshed) = match node.coordination.refresh(&leases).await {
        Ok(lost) => (lost, Instant::now()),
        Err(error) if last_refresh.elapsed() + every >= ttl => {
            tracing::error!(reason = %error, "leases could not be refreshed: ending every agent loop");
            let all = leases.into_iter().map(|lease| lease.conversation).collect();
            (all, last_refresh)
        }
        Err(error) => {
            tracing::warn!(reason = %error, "lease refresh failed");
            (Vec::new(), last_refresh)
        }
    };
    for handle in handles {
        if lost.contains(&handle.lease.conversation) {
            let _ = handle.control.send(Control::LeaseLost).await;
        }
    }
    refreshed
}

/// Reaps the dead nodes and takes over their conversations that are still meant to run.
async fn reap_dead_nodes(node: &Node, silence: Duration) {
    match node.coordination.reap(silence).await {
        Ok(orphans) => {
            for conversation in orphans {
                tracing::info!(%conversation, "taking over from a dead node");
                let owned = Arc::clone(node);
                node.tasks.spawn(async move {
                    if let Err(error) = take_over(&owned, &conversation).await {
                        tracing::warn!(%conversation, reason = %error, "takeover failed");
                    }
                });
            }
        }
        Err(error) => tracing::warn!(reason = %error, "dead nodes could not be looked for"),
    }
}

/// Every sweep interval, stops the loops that are not running, idle longer than `CLOSE_DELAY`, and have
/// no client on any node.
pub async fn sweep(node: Node) {
    let mut ticks = tokio::time::interval(node.timing.sweep);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        node.action_rate.forget_idle();
        for handle in node.sessions.running() {
            let (last_active, agent_state) = handle.activity.read();
            if agent_state == AgentState::Running || last_active.elapsed() < node.limits.close_delay
            {
                continue;
            }
            // When presence is unknown, the conversation is spared.
            match node
                .coordination
                .has_clients(&handle.lease.conversation)
                .await
            {
                Ok(false) => {
                    let stop = Control::Stop {
                        reason: StopReason::Idle,
                        done: None,
                    };
                    let _ = handle.control.try_send(stop);
                }
                Ok(true) => {}
                Err(error) => {
                    tracing::warn!(reason = %error, "presence unknown: idle close skipped");
                }
            }
        }
        inc(&node.metrics.sweeps);
    }
}
