//! Local HTTP fakes of third-party APIs, behaving as their documentation says. Each binds 127.0.0.1:0
//! and stops when dropped.

pub mod commonroom;
pub mod keycloak;
mod server;
