//! Local fakes of the third-party HTTP APIs the product calls, behaving as their documentation says.
//! Each binds 127.0.0.1:0 and stops when dropped.

pub mod commonroom;
pub mod github;
pub mod jwks;
pub mod keycloak;
pub mod llm;
mod server;
