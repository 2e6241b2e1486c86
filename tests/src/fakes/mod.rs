//! Local fakes of the third-party HTTP APIs the product calls, behaving as their documentation says.

pub mod github;
pub mod jwks;
pub mod llm;
