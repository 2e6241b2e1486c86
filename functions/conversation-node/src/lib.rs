//! The conversation node: hosts conversations behind a REST API and a Socket.IO server, runs each
//! conversation's agent loop on exactly one node (the holder of its lease), and starts proactive
//! conversations. The same code serves a standalone node and a cluster: everything cluster-wide goes
//! through the coordination port (`shared::ports::coordination`). Each part is built with what it
//! needs and no more (a context per role, assembled in `app`): the agent loop's `LoopContext`, the
//! REST `ApiContext`, the `SocketContext`, `Maintenance`, the `Dispatcher`, the `Starter`, all sharing
//! the `Lifecycle` that starts and stops conversations.
//!
//! A map of the crate:
//! - [`config`]: configuration from the environment.
//! - `app`: the node assembled ([`ConversationNode`]): router, background tasks, graceful serving.
//! - `rest`: the REST routes and probes (`/health` public; `/ready`, `/metrics` on the metrics
//!   listener); `error`: their JSON errors; `auth`: JWTs and API keys;
//!   `action_rate`: the per-user action rate.
//! - `socket`: the Socket.IO namespace, replay-then-live feeds per client.
//! - `agent`: the agent loop's state machine, the loop itself, the LLM client, the built-in agent.
//! - `lifecycle`: starting, stopping, limits, takeover, handover, on demand; `maintenance`: the
//!   periodic work (lease heartbeat, dead peers, idle sweep).
//! - `sessions`: the loops running on this node; `calls`: requests to another node's loop.
//! - `dispatch`: routing what the cluster delivers to this node.
//! - `starter`: the proactive starter; `callbacks`: `ConversationStateChanged` on the bus.
//! - `metrics`: counters, gauges and latency histograms (prometheus-client, a registry per node);
//!   `shutdown`: the stop signal and the owner of the background loops;
//!   `panics`: a panic ends its task, logged and counted, never the node.
//! - `startup`: listening (health yes, ready no) while the ports are not ready yet (Redis down).
//! - `wiring`: the ports the environment names (what `main` and the local stack build the node from).

mod action_rate;
mod agent;
mod app;
mod auth;
mod callbacks;
mod calls;
pub mod config;
mod dispatch;
mod error;
mod lifecycle;
mod maintenance;
mod metrics;
mod panics;
mod rest;
mod sessions;
mod shutdown;
mod socket;
mod starter;
mod startup;
mod wiring;

pub use agent::openhands::session_key as agent_server_session_key;
pub use app::{ConversationNode, Listeners, NodeDeps, NodeHandle, StartError};
pub use auth::mint_hs256;
pub use config::NodeConfig;
pub use metrics::NodeMetrics;
pub use panics::install as install_panic_hook;
pub use shutdown::signal as shutdown_signal;
pub use socket::{MAX_PAYLOAD, WS_READ_BUFFER, own_request_parts};
pub use startup::{Waited, serve_until_ready};
pub use wiring::{NodeWiringError, deps_from_config};
