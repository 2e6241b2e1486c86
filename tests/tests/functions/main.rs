//! The scheduled functions and the deployment: the cleanup pass on both stores, the Common Room sync
//! against its fakes, and the Lambda builds, emulator runs and template checks (`deployment`).
//! One test binary for the area, a module per file (linking once, not once per file).

mod cleanup_dynamo;
mod cleanup_embedded;
mod commonroom_sync;
mod deployment;
