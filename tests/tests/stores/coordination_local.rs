//! The coordination contract against `LocalCluster`, the in-process adapter (standalone nodes, and
//! several nodes in one test process).

use std::sync::Arc;

use e2e::contract::coordination::{ClusterSpec, Member};
use shared::adapters::local_cluster::LocalCluster;
use shared::domain::NodeId;

async fn local_cluster(spec: ClusterSpec) -> Vec<Member> {
    let cluster = LocalCluster::new(spec.lease_ttl);
    (0..spec.nodes)
        .map(|n| {
            let (node, incoming) = cluster.join(NodeId::new(&format!("node-{n}")));
            Member {
                coordination: Arc::new(node),
                incoming,
            }
        })
        .collect()
}

e2e::coordination_contract!(local_cluster);
