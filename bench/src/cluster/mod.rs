//! The cluster benchmarks, on real `conversation-node` processes (`e2e::cluster`), Redis, DynamoDB on
//! moto (or one shared embedded store) and official Socket.IO clients:
//! - [`heartbeat`] (P8): Redis commands per heartbeat per node as conversations grow;
//! - [`takeover`] (P9, R3): repeated `kill -9` of an owner under continuous user actions.

pub(crate) mod heartbeat;
pub(crate) mod takeover;

/// The parts of the family, for `--part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    Heartbeat,
    Takeover,
}

pub(crate) async fn run(parts: &[Part], quick: bool, overrides: &takeover::Overrides) {
    for part in parts {
        match part {
            Part::Heartbeat => heartbeat::run(&heartbeat::Sizes::new(quick)).await,
            Part::Takeover => takeover::run(&takeover::Sizes::new(quick).with(overrides)).await,
        }
    }
}
