//! Test harness shared by the integration tests: third-party fakes and the sync test world.

pub mod fakes;
pub mod sync_world;
