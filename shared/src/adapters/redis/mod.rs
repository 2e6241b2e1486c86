//! The clustered coordination backend on Redis (`REDIS_URL`): key and channel names in [`keys`], the
//! atomic lease changes in [`scripts`], the adapter in [`coordination`].

pub mod coordination;
pub mod keys;
pub mod scripts;

pub use coordination::{RedisCoordination, RedisSettings};
