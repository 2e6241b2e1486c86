//! P5-P7: the conversation node's Socket.IO side beside its peers, every server driven by one load
//! generator (`bench/js/sio-load.mjs`: many official `socket.io-client` clients per Node.js process):
//! - [`round_trip`] P5: sequential cross-node round trips, ours and python-socketio's, and the embedded
//!   store's own append beside them;
//! - [`load`] P6: clients sending as fast as answered on 2 and 3 servers: round trips/s, p99, server
//!   CPU-ms per round trip, and the bare socketioxide floor;
//! - [`idle`] P7: idle connections held by one server: RSS per connection;
//! - [`relay`] P11: what the `openhands` runtime's relay adds to an agent-server event on its way to a
//!   Socket.IO client, beside a client on the agent-server's own stream.
//!
//! [`servers`] starts the servers (release `conversation-node`s on Redis and one SQLite file, the
//! python-socketio peers of `bench/py/sio_peer.py`, the bare `sio-echo`), [`generator`] the clients,
//! [`procfs`] reads CPU time and RSS. Needs Redis (`TEST_REDIS_URL`), Node.js and the repository's
//! `node_modules` and `.venv` (`scripts/bench.sh` provides them).

mod generator;
mod idle;
mod load;
mod procfs;
mod relay;
mod round_trip;
mod servers;

use std::time::Duration;

/// The parts of this family, by quality bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    P5,
    P6,
    P7,
    Relay,
}

/// How much each part measures.
pub(crate) struct Sizes {
    /// Measured windows (or rounds) of each configuration; the medians are reported.
    runs: usize,
    /// Round trips per client before measuring.
    warmup: usize,
    p5_rounds: usize,
    p6_clients: usize,
    p6_window: Duration,
    p7_connections: usize,
    /// Terminal commands the agent runs in the relay benchmark.
    relay_steps: usize,
    /// Whether the peers and the bare floor run beside our node.
    pub peers: bool,
}

impl Sizes {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                runs: 1,
                warmup: 2,
                p5_rounds: 50,
                p6_clients: 10,
                p6_window: Duration::from_millis(500),
                p7_connections: 30,
                relay_steps: 3,
                peers: true,
            }
        } else {
            Self {
                runs: 3,
                warmup: 20,
                p5_rounds: 2_000,
                p6_clients: 50,
                p6_window: Duration::from_secs(10),
                p7_connections: 10_000,
                relay_steps: 40,
                peers: true,
            }
        }
    }
}

pub(crate) async fn run(part: Part, sizes: &Sizes) -> anyhow::Result<()> {
    match part {
        Part::P5 => round_trip::run(sizes).await,
        Part::P6 => load::run(sizes).await,
        Part::P7 => idle::run(sizes).await,
        Part::Relay => relay::run(sizes).await,
    }
}

/// The median of a few figures (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
