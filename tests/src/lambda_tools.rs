//! The deployment tools the tests drive, from the workspace's `.venv` (installed there by `make test`):
//! cargo-lambda (`build`, `watch`: a real Lambda runtime emulator, `invoke`), cfn-lint and the SAM CLI.
//! A missing tool panics with directions: these tests never skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in the workspace")
        .to_path_buf()
}

fn venv_bin() -> PathBuf {
    workspace_root().join(".venv/bin")
}

/// A command running `name` from `.venv/bin` in the workspace root, with `.venv/bin` first on `PATH`
/// (cargo-lambda finds its zig through the venv's Python).
pub fn tool(name: &str) -> Command {
    let path = venv_bin().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make test` (scripts/lib/tools.sh installs cargo-lambda, cfn-lint and \
         aws-sam-cli into .venv), or `.venv/bin/pip install cargo-lambda cfn-lint aws-sam-cli`",
        path.display()
    );
    let mut command = Command::new(path);
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(venv_bin()).chain(std::env::split_paths(&inherited)))
            .expect("a valid PATH");
    command
        .current_dir(workspace_root())
        .env("PATH", path)
        .kill_on_drop(true);
    command
}

/// `cargo lambda ...` (cargo hands a subcommand its own name as the first argument), with the Lambda
/// bundles' release profile of `scripts/lib/lambda-profile.sh`, so that tests build what is deployed.
pub fn cargo_lambda(subcommand: &str) -> Command {
    let mut command = tool("cargo-lambda");
    command.args(["lambda", subcommand]).envs(lambda_profile());
    command
}

/// The `export NAME=VALUE` lines of `scripts/lib/lambda-profile.sh`.
pub fn lambda_profile() -> Vec<(String, String)> {
    let path = workspace_root().join("scripts/lib/lambda-profile.sh");
    let script =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let profile: Vec<(String, String)> = script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    assert!(!profile.is_empty(), "{}: no export lines", path.display());
    profile
}

/// What a finished command printed.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end; panics with its output when it fails or outlives `limit`.
pub async fn run(mut command: Command, limit: Duration) -> Output {
    let described = format!("{:?}", command.as_std());
    let output = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{described} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("{described} could not start: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "{described} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    Output { stdout, stderr }
}

/// The workspace's target directory, as cargo (and so cargo-lambda) resolves it.
pub async fn target_dir() -> PathBuf {
    let mut metadata = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    metadata
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root());
    let output = run(metadata, Duration::from_secs(120)).await;
    let metadata: serde_json::Value =
        serde_json::from_str(&output.stdout).expect("cargo metadata prints JSON");
    PathBuf::from(
        metadata["target_directory"]
            .as_str()
            .expect("a target directory"),
    )
}

/// A free loopback port (bound, then released for the tool to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// How long the emulator may take to compile a function on its first invocation.
pub const FIRST_INVOKE: Duration = Duration::from_secs(30 * 60);

/// `cargo lambda watch` on a free loopback port: the Lambda runtime API, function URLs, and the
/// functions of this workspace, each compiled on its first invocation and run with `env`. Stopped
/// (with the functions it started) when dropped.
pub struct LambdaEmulator {
    child: Child,
    port: u16,
}

impl LambdaEmulator {
    pub async fn start(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut watch = cargo_lambda("watch");
        watch
            .args(["--ignore-changes", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--timeout", &FIRST_INVOKE.as_secs().to_string()])
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            // The functions' logs go to the test's output, where a failure shows them.
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            // Its own process group, so that the functions it runs stop with it.
            .process_group(0);
        let child = watch.spawn().expect("start cargo lambda watch");
        let emulator = Self { child, port };
        emulator.wait_until_listening().await;
        emulator
    }

    async fn wait_until_listening(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cargo lambda watch did not listen on port {} within 2 minutes",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The function URL of `function` (a `lambda_http` function) at `path`.
    pub fn function_url(&self, function: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{function}{path}", self.port)
    }

    /// `cargo lambda invoke FUNCTION --data-file FILE` against this emulator; the function's result.
    pub async fn invoke(&self, function: &str, data_file: &Path) -> serde_json::Value {
        let mut invoke = cargo_lambda("invoke");
        invoke
            .arg(function)
            .arg("--data-file")
            .arg(data_file)
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .args(["--output-format", "json"]);
        let output = run(invoke, FIRST_INVOKE).await;
        serde_json::from_str(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "the result of {function} is not JSON ({e}):\n{}\n{}",
                output.stdout, output.stderr
            )
        })
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The whole group this emulator leads: cargo lambda watch and the functions it runs.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.child.start_kill();
    }
}
