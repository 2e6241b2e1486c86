//! The dead-nodes step: cluster nodes silent for longer than `node_silence` are reaped as a live node
//! reaps them (their leases freed, their clients forgotten, through their own index sets), for when no
//! node survives to do it: a cluster scaled to zero or gone as a whole. Counted only, under `dry_run`.

use shared::ports::ClusterJanitor;

use crate::{CleanupOptions, DeadNodesReport, StepOutcome};

pub(crate) async fn run(
    janitor: Option<&dyn ClusterJanitor>,
    options: &CleanupOptions,
) -> StepOutcome<DeadNodesReport> {
    let Some(janitor) = janitor else {
        return StepOutcome::Skipped {
            reason: crate::NO_CLUSTER.into(),
        };
    };
    match janitor
        .reap_silent_nodes(options.node_silence, options.dry_run)
        .await
    {
        Ok(reaped) => StepOutcome::Done(DeadNodesReport {
            silence_seconds: options.node_silence.as_secs(),
            nodes: reaped.nodes,
            leases: reaped.leases,
            client_records: reaped.client_records,
        }),
        Err(error) => {
            tracing::error!(%error, "dead-nodes step failed");
            StepOutcome::Failed {
                error: error.to_string(),
            }
        }
    }
}
