//! The Common Room sync function: on a schedule, the conversations created since the last run become
//! Common Room activities of their users, found in Keycloak (the original's `commonroom_sync`).
//!
//! A map of the crate:
//! - `sync`: the run itself ([`run_sync`]: watermark, run lease, users, activities, summary) and its
//!   configuration.
//! - `commonroom`: the Common Room REST client (rate-limited, retried); the Keycloak client is
//!   `shared::keycloak` (the webhook resolves users through it too).
//! - `invocation`: what an invocation asks for (schedule, scheduler input, command line) and the
//!   stores it reads.
//!
//! `main` runs it under the Lambda runtime, or once from the command line; the local stack runs it on a
//! timer.

mod commonroom;
mod invocation;
mod sync;

pub use commonroom::CommonRoomConfig;
pub use invocation::{Args, InvalidInvocation, open_stores, options_from_event};
pub use sync::{
    RunOutcome, SYNC_NAME, SyncConfig, SyncDeps, SyncError, SyncOptions, SyncSettings, SyncSummary,
    run_sync,
};
