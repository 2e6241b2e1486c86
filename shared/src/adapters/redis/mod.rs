//! The clustered coordination backend on Redis (`REDIS_URL`). A map of the module:
//! - `coordination`: the node's adapter ([`RedisCoordination`]), its connections and shared helpers;
//!   each concern of the port in its own file, with its scripts: `leases` (claim with the per-user
//!   limit, refresh, release), `inbox` (streams), `messaging` (directed and room messages, presence),
//!   `liveness` (heartbeats, reaping dead nodes);
//! - `connection`: where the primary is (a fixed endpoint or Sentinel) and the command connection that
//!   follows it through a failover;
//! - `pubsub`: the node's subscriptions and the task that reads and re-opens them;
//! - `keys`: every key and channel name;
//! - `timed`: the hook told how long each command took (the node's latency histogram);
//! - `janitor`: the cleanup function's adapter ([`RedisJanitor`]).

mod connection;
mod coordination;
mod inbox;
mod janitor;
mod keys;
mod leases;
mod liveness;
mod messaging;
mod pubsub;
mod timed;

pub use connection::{RedisAccess, SentinelSettings};
pub use coordination::{AckReplicas, DEFAULT_RETENTION, RedisCoordination, RedisSettings};
pub use janitor::RedisJanitor;
pub use keys::Keys;
pub use timed::{CommandTimer, CommandTiming};
