//! A Redis Sentinel deployment of one test's own, on loopback: a primary `redis-server`, one replica
//! and three sentinels (quorum 2) watching them, each on a free port in its own directory under one
//! temporary directory, without persistence. For the tests of what happens when the master dies: kill
//! it with `kill -9`, wait for the sentinels to promote the replica, bring the dead one back as a
//! replica of the new master. Modelled on [`crate::redis::PrivateRedis`]; everything it started is
//! killed, and its directory removed, when it is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the deployment may take to be ready: the sentinels find each other through hello
/// messages published on the master every 2 s, so a few rounds of those.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a process may take to listen on its port.
const LISTEN_WITHIN: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
const SENTINELS: usize = 3;

/// One `redis-server` process (a data server or a sentinel) and where it lives.
struct Process {
    port: u16,
    dir: PathBuf,
    /// `None` once killed.
    child: Option<Child>,
}

impl Process {
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Reaped, so that no zombie outlives the test and the port is free for a restart.
            let _ = child.wait();
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The end of its log, for the panic messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// A primary, a replica and three sentinels; see the module's documentation.
pub struct SentinelRedis {
    master_name: String,
    /// The data servers: the primary first, then the replica (their roles change on a failover).
    servers: Vec<Process>,
    sentinels: Vec<Process>,
    /// The data server [`Self::kill_master`] killed, and when.
    killed: Option<(usize, Instant)>,
    /// Removed when dropped, after the processes are gone (fields drop after `Drop::drop`).
    root: tempfile::TempDir,
}

impl Drop for SentinelRedis {
    fn drop(&mut self) {
        for server in &self.servers {
            if server.child.is_some() {
                no_fork_child(server.port, Duration::from_secs(2));
            }
        }
        for process in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            process.stop();
        }
    }
}

/// Waits (at most `within`) until a data server has no fork child left to reap: the child of a full
/// sync outlives a server killed before it reaps it, and nothing on a test machine may reap it.
fn no_fork_child(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let info = cli(port, &["INFO", "persistence"]);
        if info_field(&info, "rdb_bgsave_in_progress").as_deref() != Some("1") {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

impl SentinelRedis {
    /// Starts the deployment monitoring a master named `master_name`, and waits until it is ready:
    /// the replica in sync, every sentinel knowing the master, the replica and the other sentinels
    /// (without the replica a sentinel has nothing to promote; without its peers, no quorum).
    pub fn start(master_name: &str) -> Self {
        let root = tempfile::Builder::new()
            .prefix("sentinel-redis-")
            .tempdir()
            .expect("a temporary directory");
        let dir = |name: &str| {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).expect("a process directory");
            dir
        };
        let ports = free_ports(2 + SENTINELS);
        let primary_port = ports[0];
        let mut deployment = Self {
            master_name: master_name.to_owned(),
            servers: vec![
                Process {
                    port: primary_port,
                    dir: dir("primary"),
                    child: None,
                },
                Process {
                    port: ports[1],
                    dir: dir("replica"),
                    child: None,
                },
            ],
            sentinels: (0..SENTINELS)
                .map(|n| Process {
                    port: ports[2 + n],
                    dir: dir(&format!("sentinel-{n}")),
                    child: None,
                })
                .collect(),
            killed: None,
            root,
        };
        // Started one by one into `deployment`, so that a panic on the way still stops the others.
        deployment.spawn_server(0, None);
        deployment.spawn_server(1, Some(primary_port));
        for n in 0..SENTINELS {
            deployment.spawn_sentinel(n, primary_port);
        }
        deployment.wait_until_ready(primary_port);
        deployment
    }

    fn spawn_server(&mut self, index: usize, replica_of: Option<u16>) {
        let process = &mut self.servers[index];
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &process.port.to_string()])
            .arg("--dir")
            .arg(&process.dir)
            .arg("--logfile")
            .arg(process.log())
            .args(["--save", "", "--appendonly", "no"])
            // A full sync starts at once rather than after the diskless sync's default 5 s delay.
            .args(["--repl-diskless-sync-delay", "0"]);
        if let Some(master) = replica_of {
            command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        process.child = Some(spawn(command));
        wait_until_listening(process);
    }

    fn spawn_sentinel(&mut self, index: usize, master_port: u16) {
        let name = &self.master_name;
        let process = &mut self.sentinels[index];
        // In the process's own directory: a sentinel rewrites its file with what it learns.
        let conf = process.dir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir \"{dir}\"\nlogfile \"{log}\"\n\
             sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n",
            port = process.port,
            dir = process.dir.display(),
            log = process.log().display(),
        );
        std::fs::write(&conf, text).expect("the sentinel's configuration is written");
        let mut command = Command::new("redis-server");
        command.arg(&conf).arg("--sentinel");
        process.child = Some(spawn(command));
        wait_until_listening(process);
    }

    fn wait_until_ready(&self, primary_port: u16) {
        let deadline = Instant::now() + READY_WITHIN;
        let replica = &self.servers[1];
        let until = |what: &str, ready: &dyn Fn() -> bool, process: &Process| {
            while !ready() {
                assert!(
                    Instant::now() < deadline,
                    "the Sentinel deployment was not ready within {READY_WITHIN:?}: {what}; the log \
                     of the process on port {} ends with:\n{}",
                    process.port,
                    process.log_tail()
                );
                std::thread::sleep(POLL);
            }
        };
        until(
            "the primary has no connected replica",
            &|| {
                info_field(
                    &self.cli(primary_port, &["INFO", "replication"]),
                    "connected_slaves",
                )
                .as_deref()
                    == Some("1")
            },
            &self.servers[0],
        );
        until(
            "the replica's link to the primary is not up",
            &|| {
                info_field(
                    &self.cli(replica.port, &["INFO", "replication"]),
                    "master_link_status",
                )
                .as_deref()
                    == Some("up")
            },
            replica,
        );
        until(
            "the primary's sync still has a fork child",
            &|| no_fork_child(primary_port, Duration::ZERO),
            &self.servers[0],
        );
        for sentinel in &self.sentinels {
            let ask =
                |command: &str| self.cli(sentinel.port, &["SENTINEL", command, &self.master_name]);
            until(
                "a sentinel does not name the primary as the master",
                &|| master_port_in(&ask("get-master-addr-by-name")) == Some(primary_port),
                sentinel,
            );
            until(
                "a sentinel does not know the replica",
                &|| entries(&ask("replicas")) == 1,
                sentinel,
            );
            until(
                "a sentinel does not know the 2 other sentinels",
                &|| entries(&ask("sentinels")) == SENTINELS - 1,
                sentinel,
            );
        }
    }

    /// Where the processes' directories (configuration, logs) are, while it runs.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// The sentinels' addresses, `127.0.0.1:port`.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect()
    }

    /// The name the sentinels monitor the master under.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// The current master's port, as the first sentinel that answers names it.
    pub fn master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|sentinel| self.named_master(sentinel))
            .expect("a sentinel names the master")
    }

    fn named_master(&self, sentinel: &Process) -> Option<u16> {
        let reply = self.cli(
            sentinel.port,
            &["SENTINEL", "get-master-addr-by-name", &self.master_name],
        );
        master_port_in(&reply)
    }

    /// Kills the current master with `kill -9` (no shutdown, no last words to the replica); its port.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        let index = self
            .servers
            .iter()
            .position(|server| server.port == port && server.child.is_some())
            .unwrap_or_else(|| panic!("the master on port {port} is not a running server of ours"));
        // `Child::kill` is SIGKILL to the child's PID.
        self.servers[index].stop();
        self.killed = Some((index, Instant::now()));
        port
    }

    /// Waits until every sentinel names a master other than `old_port`, one that says it is the
    /// master; how long that took, from the kill if `old_port` is the one [`Self::kill_master`]
    /// killed, else from this call. Panics once `within` has passed since then.
    pub fn wait_for_failover(&self, old_port: u16, within: Duration) -> Duration {
        let since = match self.killed {
            Some((index, at)) if self.servers[index].port == old_port => at,
            _ => Instant::now(),
        };
        let deadline = since + within;
        loop {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|sentinel| self.named_master(sentinel))
                .collect();
            if let Some(Some(new_port)) = named.first()
                && *new_port != old_port
                && named.iter().all(|port| *port == Some(*new_port))
                && self.cli(*new_port, &["ROLE"]).lines().next() == Some("master")
            {
                return since.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "no failover from port {old_port} within {within:?}: the sentinels name {named:?}; \
                 the first sentinel's log ends with:\n{}",
                self.sentinels[0].log_tail()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Restarts the server [`Self::kill_master`] killed, on its port, as a replica of the current
    /// master, so that it rejoins (empty: it had no persistence); its port.
    pub fn restart_killed(&mut self) -> u16 {
        let (index, _) = self.killed.take().expect("a server was killed");
        let master = self.master_port();
        self.spawn_server(index, Some(master));
        self.servers[index].port
    }

    /// Runs one command with `redis-cli` against `port`; its reply as text, one element a line.
    pub fn cli(&self, port: u16, command: &[&str]) -> String {
        cli(port, command)
    }
}

fn cli(port: u16, command: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(command)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `count` distinct ports nothing listens on now: bound together (so that the system hands out no
/// port twice), then released for the processes to take.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("a bound address").port())
        .collect()
}

fn spawn(mut command: Command) -> Child {
    // Their logs go to files in their directories (`logfile`); nothing else is printed.
    command
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (make test installs it)")
}

fn wait_until_listening(process: &Process) {
    let deadline = Instant::now() + LISTEN_WITHIN;
    while std::net::TcpStream::connect(("127.0.0.1", process.port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on port {} within {LISTEN_WITHIN:?}; its log in {} ends \
             with:\n{}",
            process.port,
            process.dir.display(),
            process.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `field:value` line of an `INFO` reply.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (name, value) = line.trim_end().split_once(':')?;
        (name == field).then(|| value.to_owned())
    })
}

/// The port in a `SENTINEL get-master-addr-by-name` reply (`ip`, `port`, a line each).
fn master_port_in(reply: &str) -> Option<u16> {
    reply.lines().nth(1)?.trim().parse().ok()
}

/// How many entries a `SENTINEL replicas|sentinels` reply lists: `redis-cli` prints the nested
/// arrays flat, each entry as field, value, field, value, ..., starting with `name`.
fn entries(reply: &str) -> usize {
    reply
        .lines()
        .step_by(2)
        .filter(|field| *field == "name")
        .count()
}
