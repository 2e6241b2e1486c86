//! The harness of every test that talks to Redis: the server `make test` starts (`TEST_REDIS_URL`)
//! and a fresh key prefix per test, so that tests share one server without seeing each other.

/// The variable naming the Redis server's URL.
pub const URL_VAR: &str = "TEST_REDIS_URL";

/// The Redis server's URL; panics with directions when it is not configured.
pub fn url() -> String {
    std::env::var(URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{URL_VAR} is not set: run the tests with `make test`, which starts Redis, or \
                 export {URL_VAR}=redis://127.0.0.1:6379 with a server running there"
            )
        })
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test-{}:", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A Redis server of one test's own (`redis-server` on a free port, no persistence): for the tests
/// that restart it, or that read its command statistics, which a shared server mixes with other tests'.
pub struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self {
            child: Self::spawn(port),
            port,
        }
    }

    fn spawn(port: u16) -> std::process::Child {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (make test installs it)");
        let deadline = std::time::Instant::now() + crate::socketio::PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone with it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts an empty server on the same port, after [`Self::kill`].
    pub fn start_empty(&mut self) {
        self.child = Self::spawn(self.port);
    }

    /// Runs one command with `redis-cli`; its raw output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// How many times each command ran (`INFO commandstats`), by lower-case name.
    pub fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.cli(&["INFO", "commandstats"])
            .lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }
}
