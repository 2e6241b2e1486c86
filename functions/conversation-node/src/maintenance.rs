//! The node's periodic work, apart from what users ask for ([`crate::lifecycle`]):
//! - the heartbeat refreshes this node's leases and ends the loops whose lease is lost (or that could
//!   not be refreshed for nearly a TTL) and records this node's liveness;
//! - between heartbeats the peer check takes over the conversations of dead nodes;
//! - the sweep stops idle conversations with no client anywhere, and forgets idle action-rate keys.

use std::sync::Arc;
use std::time::Duration;

use shared::domain::AgentState;
use shared::ports::coordination::{Leases, Liveness, Messaging, StopReason};
use tokio::time::{Instant, MissedTickBehavior};

use crate::action_rate::ActionLimiter;
use crate::config::Timing;
use crate::lifecycle::Lifecycle;
use crate::metrics::NodeMetrics;
use crate::sessions::Control;

/// What the periodic work needs: the loops (through the lifecycle), the leases, liveness and presence
/// of the cluster, the action-rate keys to forget, the cadences.
pub(crate) struct Maintenance {
    pub lifecycle: Arc<Lifecycle>,
    pub leases: Arc<dyn Leases>,
    pub liveness: Arc<dyn Liveness>,
    pub presence: Arc<dyn Messaging>,
    pub action_rate: Arc<ActionLimiter>,
    pub metrics: Arc<NodeMetrics>,
    pub timing: Timing,
    pub close_delay: Duration,
}

impl Maintenance {
    /// Refreshes this node's leases every heartbeat, ending the loops whose lease is gone. When refreshes
    /// fail for so long that the leases may expire before the next one, every loop ends (fencing: better no
    /// owner for a moment than two). Between heartbeats, every peer check takes over the conversations of
    /// dead nodes: those whose connection Redis shows gone (a crash, seen at once) and those silent for two
    /// heartbeats (well within a lease TTL); the reaper frees their leases at once, and every node with
    /// their clients is told as well.
    pub(crate) async fn heartbeat(self: Arc<Self>) {
        let every = self.timing.heartbeat;
        let silence = every * 2;
        let mut beats = tokio::time::interval(every);
        beats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut peer_checks = tokio::time::interval(self.timing.peer_check);
        peer_checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_refresh = Instant::now();
        let mut last_beat: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = beats.tick() => {
                    last_refresh = self.refresh_leases(last_refresh).await;
                    if self.lifecycle.is_shutting_down() {
                        continue;
                    }
                    match self.liveness.beat().await {
                        Ok(()) => last_beat = Some(Instant::now()),
                        Err(error) => tracing::warn!(reason = %error, "liveness could not be recorded"),
                    }
                }
                _ = peer_checks.tick() => {
                    // A node whose own beat is stale (Redis was away, the process starved) would reap
                    // itself: it waits for its next beat.
                    if !self.lifecycle.is_shutting_down()
                        && last_beat.is_some_and(|at| at.elapsed() < silence)
                    {
                        self.reap_dead_nodes(silence).await;
                    }
                }
            }
        }
    }

    /// One refresh of this node's leases; returns when the leases were last known refreshed.
    async fn refresh_leases(&self, last_refresh: Instant) -> Instant {
        let (every, ttl) = (self.timing.heartbeat, self.timing.lease_ttl);
        let handles = self.lifecycle.sessions().running();
        let leases: Vec<_> = handles.iter().map(|handle| handle.lease.clone()).collect();
        let (lost, refreshed) = match self.leases.refresh(&leases).await {
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

    /// Reaps the dead nodes and takes over (its share of) their conversations still meant to run.
    async fn reap_dead_nodes(&self, silence: Duration) {
        match self.liveness.reap(silence).await {
            Ok(orphans) if orphans.is_empty() => {}
            // On the hand-over list now, every node told: this one pulls its share too.
            Ok(orphans) => {
                tracing::info!(
                    conversations = orphans.len(),
                    "taking over from a dead node"
                );
                self.lifecycle.spawn_drain_handovers();
            }
            Err(error) => tracing::warn!(reason = %error, "dead nodes could not be looked for"),
        }
    }

    /// Every sweep interval, stops the loops that are not running, idle longer than `CLOSE_DELAY`, and have
    /// no client on any node.
    pub(crate) async fn sweep(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.timing.sweep);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.action_rate.forget_idle();
            for handle in self.lifecycle.sessions().running() {
                let (last_active, agent_state) = handle.activity.read();
                if agent_state == AgentState::Running || last_active.elapsed() < self.close_delay {
                    continue;
                }
                // When presence is unknown, the conversation is spared.
                match self.presence.has_clients(&handle.lease.conversation).await {
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
            self.metrics.sweeps.inc();
        }
    }
}
