//! The GitHub webhook endpoint: signature, payloads, gates and answers.

pub mod signature;
