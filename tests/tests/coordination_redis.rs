//! The coordination contract against the Redis adapter (`TEST_REDIS_URL`), each cluster under its own
//! key prefix.

use std::sync::Arc;

use e2e::contract::coordination::{ClusterSpec, Member};
use shared::adapters::redis::{RedisCoordination, RedisSettings};
use shared::ports::coordination::NodeId;

async fn redis_cluster(spec: ClusterSpec) -> Vec<Member> {
    let settings = RedisSettings {
        url: e2e::redis::url(),
        key_prefix: e2e::redis::unique_prefix(),
        lease_ttl: spec.lease_ttl,
    };
    let mut members = Vec::new();
    for n in 0..spec.nodes {
        let (node, incoming) =
            RedisCoordination::connect(&settings, NodeId::new(&format!("node-{n}")))
                .await
                .expect("Redis is reachable");
        members.push(Member {
            coordination: Arc::new(node),
            incoming,
        });
    }
    members
}

e2e::coordination_contract!(redis_cluster);
