//! Quality bar P1, Lambda init: the time from process start to the first poll of the runtime API
//! (`GET /2018-06-01/runtime/invocation/next`) of the webhook, sync and cleanup bootstraps, against a local
//! runtime API, beside the bare `lambda_runtime` hello world (`functions/cleanup/examples/lambda_hello.rs`)
//! measured in the same run. Builds them all with `cargo lambda build --release` first (host
//! architecture), then starts each bootstrap `--runs` times, interleaved.
//!
//! `--secrets`: the secret values come from a Secrets Manager secret that the benchmark creates on the
//! tests' moto (`TEST_AWS_ENDPOINT_URL`), named by `SECRETS_ARN`, as deployed: each init then makes its
//! one `GetSecretValue` call (to moto, a local Python server: not Secrets Manager's own latency).
//!
//! `cargo run -p e2e --example lambda_init_bench [-- --runs 30] [--secrets]` (the harness itself needs no
//! release build)

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e::lambda_tools::{cargo_lambda, run, target_dir};
use e2e::moto;

const FUNCTIONS: [&str; 3] = ["webhook", "commonroom-sync", "cleanup"];
const HELLO: &str = "lambda_hello";
/// The bar: each function's median init at most this many times the hello world's.
const BAR: f64 = 2.0;
const BUILD_LIMIT: Duration = Duration::from_secs(60 * 60);

/// The environment Lambda gives a function, plus configuration every function accepts at start
/// (AWS endpoints on a closed port: nothing is called before the first poll).
const ENV: &[(&str, &str)] = &[
    ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "/bench"),
    ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ("PROACTIVE_TABLE", "bench-proactive"),
    ("CONVERSATIONS_TABLE", "bench-conversations"),
    ("EVENT_BUS_NAME", "bench"),
    ("GITHUB_WEBHOOK_SECRET", "bench"),
    ("GITHUB_API_URL", "http://127.0.0.1:9"),
    ("KEYCLOAK_SERVER_URL", "http://127.0.0.1:9"),
    ("KEYCLOAK_REALM_NAME", "bench"),
    ("KEYCLOAK_CLIENT_ID", "bench"),
    ("KEYCLOAK_CLIENT_SECRET", "bench"),
    ("COMMON_ROOM_API_KEY", "bench"),
    ("COMMON_ROOM_DESTINATION_SOURCE_ID", "1"),
    ("COMMON_ROOM_API_BASE_URL", "http://127.0.0.1:9"),
    ("PUBLIC_URL", "http://127.0.0.1:9"),
    ("RUST_LOG", "info"),
];

/// The variables of [`ENV`] that the deployed functions read from the secret.
const SECRET_NAMES: [&str; 3] = [
    "GITHUB_WEBHOOK_SECRET",
    "KEYCLOAK_CLIENT_SECRET",
    "COMMON_ROOM_API_KEY",
];

/// The functions' environment: [`ENV`], or with `secrets` its secret values in a new secret on moto
/// (`SECRETS_ARN`) instead, and the AWS endpoint moto's.
async fn function_env(secrets: bool) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ENV
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    if !secrets {
        return env;
    }
    let values: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .filter(|(name, _)| SECRET_NAMES.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone().into()))
        .collect();
    let created = aws_sdk_secretsmanager::Client::new(&moto::sdk_config().await)
        .create_secret()
        .name(moto::unique_name("bench-secrets"))
        .secret_string(serde_json::Value::Object(values).to_string())
        .send()
        .await
        .expect("create the secret on moto (TEST_AWS_ENDPOINT_URL)");
    env.retain(|(name, _)| !SECRET_NAMES.contains(&name.as_str()) && name != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), moto::endpoint()));
    env.push((
        "SECRETS_ARN".into(),
        created.arn().expect("an ARN").to_owned(),
    ));
    env
}

/// The local runtime API, as far as init goes: every connection's first request is a function's first
/// poll (`GET /2018-06-01/runtime/invocation/next`): the time its bytes arrive is reported. No
/// invocation is ever given; the function is stopped right after.
fn runtime_api() -> (String, mpsc::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the runtime API");
    let address = listener.local_addr().expect("an address").to_string();
    let (polls, received) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 512];
            if let Ok(n) = stream.read(&mut request)
                && request[..n].starts_with(b"GET /2018-06-01/runtime/invocation/next")
            {
                let _ = polls.send(Instant::now());
            }
        }
    });
    (address, received)
}

/// Builds the functions and the hello world with cargo-lambda, as deployed (host architecture), each
/// function alone as `sam build` builds it (built together, cargo would unify their features and
/// link every adapter into each); returns where the bootstraps are.
async fn build() -> PathBuf {
    for function in FUNCTIONS {
        let mut alone = cargo_lambda("build");
        alone.args(["--release", "--package", function]);
        run(alone, BUILD_LIMIT).await;
    }
    let mut hello = cargo_lambda("build");
    hello.args(["--release", "--package", "cleanup", "--example", HELLO]);
    run(hello, BUILD_LIMIT).await;
    target_dir().await.join("lambda")
}

/// One start: milliseconds until the first poll, or why there was none.
fn init_once(
    binary: &Path,
    env: &[(String, String)],
    api: &str,
    polls: &mpsc::Receiver<Instant>,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        // What Lambda gives a process: its own variables, nothing of this shell's.
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let polled = polls.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    match polled {
        Ok(at) => Ok(at.duration_since(started).as_secs_f64() * 1000.0),
        Err(_) => Err(format!(
            "no poll within 10 s ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 30usize;
    let mut secrets = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--secrets" => secrets = true,
            other => {
                panic!("unknown argument {other}; usage: lambda_init_bench [--runs N] [--secrets]")
            }
        }
    }
    let env = function_env(secrets).await;
    let lambda_dir = build().await;

    let (api, polls) = runtime_api();
    let bootstrap = |name: &str| lambda_dir.join(name).join("bootstrap");
    let mut binaries: Vec<(&str, PathBuf)> = vec![(HELLO, bootstrap(HELLO))];
    binaries.extend(FUNCTIONS.iter().map(|f| (*f, bootstrap(f))));
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); binaries.len()];
    let mut failures: Vec<Option<String>> = vec![None; binaries.len()];
    // Interleaved, so that the machine's noise falls on every binary alike.
    for _ in 0..runs {
        for (i, (_, binary)) in binaries.iter().enumerate() {
            if failures[i].is_some() {
                continue; // a binary that did not poll once is reported, not retried
            }
            match init_once(binary, &env, &api, &polls) {
                Ok(ms) => samples[i].push(ms),
                Err(why) => failures[i] = Some(why),
            }
        }
    }

    let source = if secrets {
        "secrets from SECRETS_ARN on moto"
    } else {
        "secrets in the environment"
    };
    println!(
        "Lambda init, process start to first runtime API poll, {runs} runs each (host, release, {source})"
    );
    println!(
        "{:<18}{:>10}{:>10}{:>10}{:>12}  verdict",
        "binary", "min ms", "median", "p90", "x hello"
    );
    let median_of = |s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        (!s.is_empty()).then(|| percentile(s, 0.5))
    };
    let hello_median = median_of(&mut samples[0]).expect("the hello world polls");
    let mut over = false;
    for (i, (name, _)) in binaries.iter().enumerate() {
        let Some(median) = median_of(&mut samples[i]) else {
            println!(
                "{name:<18}  never polled: {}",
                failures[i].as_deref().unwrap_or("?")
            );
            over = true;
            continue;
        };
        let ratio = median / hello_median;
        let verdict = if i == 0 {
            "floor"
        } else if ratio <= BAR {
            "ok"
        } else {
            over = true;
            "OVER"
        };
        let s = &samples[i];
        println!(
            "{name:<18}{:>10.2}{median:>10.2}{:>10.2}{ratio:>12.2}  {verdict}",
            s[0],
            percentile(s, 0.9)
        );
    }
    if over {
        std::process::exit(1);
    }
}
