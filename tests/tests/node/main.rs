//! The conversation node: in-process nodes through REST and the official Socket.IO clients (standalone,
//! several on one cluster, on Redis), and clustered node processes (`cluster_processes`).
//! One test binary for the area, a module per file (linking once, not once per file).

mod callbacks;
mod cluster;
mod cluster_hardening;
mod cluster_processes;
mod cluster_redis;
mod jwks;
mod lifecycle;
mod llm;
mod metrics;
mod openhands;
mod rest;
mod settings;
mod socketio;
mod starter;
