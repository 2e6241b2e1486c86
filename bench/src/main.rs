//! The quality bars' benchmarks (the README's Benchmarks table: P1-P10, R1-R8), one subcommand per
//! family:
//! `cargo run --release -p bench -- trigger [--backend embedded|dynamodb] [--quick]`,
//! `... -- cluster [--part heartbeat|takeover] [--backend dynamodb|embedded]`,
//! `... -- fuzz-webhook [--seconds S]`, `... -- socketio [--part p5|p6|p7|relay]`; and
//! `... -- plot [--from DIR] [--to DIR]`, the pictures of their JSON figures (`BENCH_OUT`).
//! `scripts/bench.sh` starts what they need, runs them all and draws the pictures into `docs/img/`;
//! `docs/benchmarks.md` keeps the results.

mod cluster;
mod fuzz;
mod plot;
mod socketio;
mod stats;
mod trigger;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of the proactive bundle")]
struct Cli {
    /// Small sizes, for the test that keeps the programs from rotting.
    #[arg(long, global = true)]
    quick: bool,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// P3, P4, R1: the trigger decision (DynamoDB needs TEST_AWS_ENDPOINT_URL, a moto server).
    Trigger {
        #[arg(long, value_enum, default_values_t = [trigger::Backend::Embedded, trigger::Backend::Dynamodb])]
        backend: Vec<trigger::Backend>,
    },
    /// P8, P9, R3: node processes on Redis and moto (needs TEST_AWS_ENDPOINT_URL; TEST_REDIS_URL for takeover).
    Cluster {
        #[arg(long, value_enum, default_values_t = [cluster::Part::Heartbeat, cluster::Part::Takeover])]
        part: Vec<cluster::Part>,
        #[command(flatten)]
        takeover: cluster::takeover::Overrides,
    },
    /// R2: mutated deliveries through the webhook handler; exits 1 on any finding.
    FuzzWebhook {
        /// How long to run (default 60 s, 2 s with --quick).
        #[arg(long)]
        seconds: Option<f64>,
        /// The random seed, to replay a run.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// P5, P6, P7: Socket.IO round trips, load and idle connections, ours beside the peers; P11 (relay):
    /// the agent-server relay (needs Redis at TEST_REDIS_URL, Node.js, the release `conversation-node`
    /// and `sio-echo` binaries, AGENT_SERVER_PYTHON for the relay).
    Socketio {
        #[arg(long, value_enum, default_values_t = [socketio::Part::P5, socketio::Part::P6, socketio::Part::P7, socketio::Part::Relay])]
        part: Vec<socketio::Part>,
        /// Our node only: no peers, no floor (for profiling runs).
        #[arg(long)]
        ours_only: bool,
    },
    /// SVG pictures of the JSON figures the benchmarks wrote (with `BENCH_OUT` set).
    Plot {
        /// Where the figures are (`BENCH_OUT` of the runs).
        #[arg(long, default_value = "target/bench")]
        from: PathBuf,
        /// Where the pictures go.
        #[arg(long, default_value = "docs/img")]
        to: PathBuf,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.bench {
        Bench::Trigger { backend } => {
            let sizes = trigger::Sizes::new(cli.quick);
            for backend in backend {
                trigger::run(backend, &sizes).await;
            }
        }
        Bench::Cluster { part, takeover } => cluster::run(&part, cli.quick, &takeover).await,
        Bench::FuzzWebhook { seconds, seed } => {
            let seconds = seconds.unwrap_or(if cli.quick { 2.0 } else { 60.0 });
            if !fuzz::run(std::time::Duration::from_secs_f64(seconds), seed).await {
                std::process::exit(1);
            }
        }
        Bench::Socketio { part, ours_only } => {
            let mut sizes = socketio::Sizes::new(cli.quick);
            sizes.peers = !ours_only;
            for part in part {
                if let Err(error) = socketio::run(part, &sizes).await {
                    eprintln!("{part:?} failed: {error:#}");
                    std::process::exit(1);
                }
            }
        }
        Bench::Plot { from, to } => {
            if let Err(error) = plot::run(&from, &to) {
                eprintln!("plot failed: {error:#}");
                std::process::exit(1);
            }
        }
    }
}
