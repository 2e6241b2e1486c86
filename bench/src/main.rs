//! The quality bars' benchmarks (`../shared/spec/quality-bars.md`), one subcommand each family:
//! `cargo run --release -p bench -- trigger [--backend embedded|dynamodb] [--quick]`.
//! `scripts/bench.sh` starts what they need and runs them all; the README keeps the results.

mod stats;
mod trigger;

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
    }
}
