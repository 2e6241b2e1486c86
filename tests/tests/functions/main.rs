//! The scheduled functions and the deployment: the cleanup pass on both stores, the Common Room sync
//! against its fakes, the Lambda builds, emulator runs and template checks (`deployment`), each
//! role's policy in the template run as exactly that on an IAM-enforcing moto (`iam`), and the secrets
//! read from Secrets Manager (`secrets`).
//! One test binary for the area, a module per file (linking once, not once per file).

mod cleanup_dynamo;
mod cleanup_embedded;
mod commonroom_sync;
mod deployment;
mod iam;
mod secrets;
