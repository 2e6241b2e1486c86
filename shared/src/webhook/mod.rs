//! The GitHub webhook endpoint.
