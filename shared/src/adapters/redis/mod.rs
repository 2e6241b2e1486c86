//! The clustered coordination backend on Redis (`REDIS_URL`): key and channel names in [`keys`], the
//! atomic lease changes in [`scripts`], the node's adapter in [`coordination`], the cleanup
//! function's in [`janitor`].

pub mod coordination;
pub mod janitor;
pub mod keys;
pub mod scripts;

pub use coordination::{RedisCoordination, RedisSettings};
pub use janitor::RedisJanitor;
