//! The load generator: `bench/js/sio-load.mjs`, many official `socket.io-client` clients in one Node.js
//! process, driven over its standard input and output (one JSON line per happening).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::stats::Samples;

/// Where one client connects: a server and a conversation it may open.
pub(super) struct Target {
    pub url: String,
    pub conversation_id: String,
    pub token: String,
}

impl Target {
    fn json(&self) -> Value {
        json!({ "url": self.url, "conversation_id": self.conversation_id, "token": self.token })
    }
}

/// What a measured window of round trips gave.
pub(super) struct Outcome {
    pub samples: Samples,
    pub wall: Duration,
    /// The generator's own CPU time over the window.
    pub cpu_ms: f64,
}

impl Outcome {
    pub(super) fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }

    /// The generator's CPU use over the window, in cores (1.0: one core busy, its own ceiling).
    pub(super) fn generator_cores(&self) -> f64 {
        self.cpu_ms / (self.wall.as_secs_f64() * 1000.0)
    }
}

/// One generator process, with its clients connected; killed when dropped.
pub(super) struct Generator {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Generator {
    async fn start(config: Value) -> anyhow::Result<Self> {
        let script = super::servers::workspace().join("bench/js/sio-load.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting node (Node.js) with bench/js/sio-load.mjs")?;
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().context("its output")?).lines();
        let mut generator = Self {
            child,
            stdin,
            lines,
        };
        generator.expect("ready").await?;
        Ok(generator)
    }

    /// Connects a client to each target and warms each up with `warmup` round trips.
    pub(super) async fn round_trips(
        targets: &[Target],
        rounds: Option<usize>,
        duration: Option<Duration>,
        warmup: usize,
    ) -> anyhow::Result<Self> {
        Self::start(json!({
            "mode": "round_trips",
            "clients": targets.iter().map(Target::json).collect::<Vec<_>>(),
            "rounds": rounds,
            "duration_ms": duration.map(|d| d.as_millis() as u64),
            "warmup": warmup,
        }))
        .await
    }

    /// Holds `count` idle connections spread over `targets`.
    pub(super) async fn idle(targets: &[Target], count: usize) -> anyhow::Result<Self> {
        Self::start(json!({
            "mode": "idle",
            "clients": targets.iter().map(Target::json).collect::<Vec<_>>(),
            "count": count,
            "parallel": 50,
        }))
        .await
    }

    /// Starts the measured window and waits for its end.
    pub(super) async fn go(mut self) -> anyhow::Result<Outcome> {
        let stdin = self.stdin.as_mut().context("the generator's input")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
        let done = self.expect("done").await?;
        let mut samples = Samples::default();
        for us in done["latencies_us"].as_array().context("latencies")? {
            samples.push(Duration::from_micros(us.as_u64().context("a latency")?));
        }
        Ok(Outcome {
            samples,
            wall: Duration::from_secs_f64(done["wall_ms"].as_f64().context("wall_ms")? / 1000.0),
            cpu_ms: done["cpu_ms"].as_f64().context("cpu_ms")?,
        })
    }

    /// Closes every connection and ends the process.
    pub(super) async fn close(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        self.child.wait().await?;
        Ok(())
    }

    async fn expect(&mut self, kind: &str) -> anyhow::Result<Value> {
        let line = self
            .lines
            .next_line()
            .await?
            .context("the generator ended without a word")?;
        let parsed: Value = serde_json::from_str(&line).with_context(|| line.clone())?;
        if parsed["type"] != kind {
            bail!("the generator said {line} (expected {kind})");
        }
        Ok(parsed)
    }
}
