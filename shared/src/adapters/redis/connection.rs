//! Where the cluster's Redis primary is, and connections that follow it through a failover: a fixed
//! endpoint (`REDIS_URL`; ElastiCache's primary endpoint moves by DNS) or the primary that Redis Sentinel
//! names (`REDIS_SENTINELS`). [`Commands`] is a reconnecting command connection that, on a fault saying
//! the primary moved (`READONLY` from a demoted primary; with Sentinel, a refused or dropped
//! connection), finds the primary again and swaps in a connection to it, telling the pub/sub reader to
//! re-open there too. Every connection is made with the [`RedisAccess`]: TLS for a `rediss://` URL, the
//! `AUTH` token.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::Sentinel;
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, TlsCertificates, Value,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;

use super::coordination::{COMMAND_TIMEOUT, unavailable};
use super::timed::{self, CommandTiming};
use crate::ports::coordination::CoordinationError;
use crate::secret::Secret;

/// How often at most a fault makes the node ask Sentinel where the primary is (a failover in progress
/// fails every command until Sentinel has promoted a replica).
const SENTINEL_ASK_INTERVAL: Duration = Duration::from_millis(100);

/// The Sentinels watching the cluster's primary (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`).
#[derive(Debug, Clone)]
pub struct SentinelSettings {
    /// `host:port` of each Sentinel.
    pub sentinels: Vec<String>,
    /// The name the Sentinels monitor the primary under.
    pub master: String,
}

/// What a connection needs beyond the address: `REDIS_AUTH_TOKEN`, the `AUTH` password (over any in
/// the URL; from the secret or the environment, never logged), and `REDIS_TLS_CA_FILE`, PEM CAs that a
/// `rediss://` server's certificate may chain to. Without the file, the trust is the webpki roots
/// (Amazon's among them, which ElastiCache chains to); with it, the file's CAs beside Amazon's roots
/// (the Redis client takes one PEM list in place of its roots).
#[derive(Debug, Clone, Default)]
pub struct RedisAccess {
    pub auth_token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

impl RedisAccess {
    pub fn from_env() -> Self {
        Self {
            auth_token: crate::config::var("REDIS_AUTH_TOKEN").map(Secret::new),
            ca_file: crate::config::var("REDIS_TLS_CA_FILE").map(PathBuf::from),
        }
    }

    /// The PEM roots of a TLS connection when they are not the default ones: the file's CAs (read
    /// when an endpoint is made, so that a bad file fails the start) and Amazon's roots.
    fn roots(&self) -> Result<Option<Vec<u8>>, CoordinationError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let misconfigured = |reason: String| {
            CoordinationError::Misconfigured(format!("REDIS_TLS_CA_FILE: {reason}"))
        };
        let mut pem =
            std::fs::read(path).map_err(|e| misconfigured(format!("{}: {e}", path.display())))?;
        let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
        if !certificates.is_ok_and(|certificates| !certificates.is_empty()) {
            return Err(misconfigured(format!(
                "{}: no PEM certificate",
                path.display()
            )));
        }
        pem.push(b'\n');
        pem.extend_from_slice(crate::aws::AMAZON_TRUST_SERVICES);
        Ok(Some(pem))
    }

    /// A client of the server `info` names, with the token and, for TLS, the roots.
    fn client(&self, info: ConnectionInfo, roots: Option<&[u8]>) -> Result<Client, RedisError> {
        let info = match &self.auth_token {
            Some(token) => {
                let redis = info.redis_settings().clone().set_password(token.expose());
                info.set_redis_settings(redis)
            }
            None => info,
        };
        match (info.addr(), roots) {
            (ConnectionAddr::TcpTls { .. }, Some(roots)) => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(roots.to_vec()),
                },
            ),
            _ => Client::open(info),
        }
    }
}

/// How the primary is found.
enum Locator {
    Fixed(Client),
    Sentinel {
        sentinel: Mutex<Sentinel>,
        master: String,
        last_asked: Mutex<Option<Instant>>,
    },
}

/// The primary's whereabouts and the signal that it moved.
pub(super) struct Endpoint {
    locator: Locator,
    access: RedisAccess,
    /// The TLS roots, when not the default ones (see [`RedisAccess`]).
    roots: Option<Vec<u8>>,
    /// Notified when a connection was moved to another primary (the pub/sub reader re-opens).
    pub moved: Notify,
    /// How many times a connection was moved (what was learnt of the old primary is stale).
    pub moves: AtomicU64,
}

impl Endpoint {
    pub(super) fn new(
        url: &str,
        sentinel: Option<&SentinelSettings>,
        access: &RedisAccess,
    ) -> Result<Arc<Self>, CoordinationError> {
        let misconfigured = |error: RedisError| CoordinationError::Misconfigured(error.to_string());
        let roots = access.roots()?;
        let locator = match sentinel {
            None => Locator::Fixed(
                url.into_connection_info()
                    .and_then(|info| access.client(info, roots.as_deref()))
                    .map_err(misconfigured)?,
            ),
            Some(settings) => Locator::Sentinel {
                sentinel: Mutex::new(
                    Sentinel::build(
                        settings
                            .sentinels
                            .iter()
                            .map(|address| format!("redis://{address}"))
                            .collect(),
                    )
                    .map_err(misconfigured)?,
                ),
                master: settings.master.clone(),
                last_asked: Mutex::default(),
            },
        };
        Ok(Arc::new(Self {
            locator,
            access: access.clone(),
            roots,
            moved: Notify::new(),
            moves: AtomicU64::new(0),
        }))
    }

    /// A client of the current primary.
    pub(super) async fn client(&self) -> Result<Client, CoordinationError> {
        match &self.locator {
            Locator::Fixed(client) => Ok(client.clone()),
            Locator::Sentinel {
                sentinel, master, ..
            } => {
                let mut sentinel = sentinel.lock().await;
                let primary =
                    tokio::time::timeout(COMMAND_TIMEOUT, sentinel.async_master_for(master, None))
                        .await
                        .map_err(|_| CoordinationError::Unavailable("sentinel timed out".into()))?
                        .map_err(unavailable)?;
                // Sentinel names the primary's address only: the token goes with it.
                self.access
                    .client(primary.get_connection_info().clone(), self.roots.as_deref())
                    .map_err(unavailable)
            }
        }
    }

    /// How a failed command's `error` bears on where the primary is: `Some(true)` for a demoted
    /// primary (`READONLY`), `Some(false)` for a lost connection that Sentinel may explain, `None` else.
    fn reading(&self, error: &RedisError) -> Option<bool> {
        if matches!(
            error.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        ) {
            return Some(true);
        }
        let lost =
            error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal();
        (lost && matches!(self.locator, Locator::Sentinel { .. })).then_some(false)
    }

    /// Whether it is time to look for the primary again (at most every [`SENTINEL_ASK_INTERVAL`]).
    async fn may_look_again(&self) -> bool {
        let Locator::Sentinel { last_asked, .. } = &self.locator else {
            return true;
        };
        let mut last_asked = last_asked.lock().await;
        if last_asked.is_some_and(|at| at.elapsed() < SENTINEL_ASK_INTERVAL) {
            return false;
        }
        *last_asked = Some(Instant::now());
        true
    }
}

/// A reconnecting command connection to the current primary.
#[derive(Clone)]
pub(super) struct Commands {
    endpoint: Arc<Endpoint>,
    current: Arc<RwLock<Connected>>,
    /// Serialises the moves, so that one fault seen by many commands moves the connection once.
    moving: Arc<Mutex<()>>,
    pub(super) timing: CommandTiming,
}

struct Connected {
    generation: u64,
    address: String,
    manager: ConnectionManager,
}

/// Counts the connections made, so that each knows whether a move already replaced it.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

async fn manager(client: &Client) -> Result<Connected, CoordinationError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2);
    let manager = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(unavailable)?;
    Ok(Connected {
        generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        address: client.get_connection_info().addr().to_string(),
        manager,
    })
}

impl Commands {
    /// How many times a connection to this endpoint moved to another primary.
    pub(super) fn moves(&self) -> u64 {
        self.endpoint.moves.load(Ordering::Acquire)
    }

    pub(super) async fn connect(endpoint: Arc<Endpoint>) -> Result<Self, CoordinationError> {
        let connected = manager(&endpoint.client().await?).await?;
        Ok(Self {
            endpoint,
            current: Arc::new(RwLock::new(connected)),
            moving: Arc::default(),
            timing: CommandTiming::default(),
        })
    }

    fn current(&self) -> (u64, ConnectionManager) {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        (current.generation, current.manager.clone())
    }

    /// Replaces the connection made as `generation` by one to wherever the primary is now (a demoted
    /// primary's connection is replaced even at the same address: its DNS name may point elsewhere).
    async fn follow_primary(self, generation: u64, readonly: bool) {
        let _moving = self.moving.lock().await;
        if self.current().0 != generation {
            return;
        }
        let moved = async {
            let client = self.endpoint.client().await?;
            let address = client.get_connection_info().addr().to_string();
            let same = self
                .current
                .read()
                .is_ok_and(|current| current.address == address);
            if same && !readonly {
                return Ok(false);
            }
            let connected = manager(&client).await?;
            tracing::warn!(primary = %address, "redis primary moved: reconnected");
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = connected;
            Ok::<_, CoordinationError>(true)
        };
        match moved.await {
            Ok(true) => {
                self.endpoint.moves.fetch_add(1, Ordering::AcqRel);
                self.endpoint.moved.notify_waiters();
            }
            Ok(false) => {}
            Err(error) => tracing::debug!(%error, "redis primary not found yet"),
        }
    }

    /// Looks for the primary again in the background when a failure says it may have moved.
    fn after<T>(&self, generation: u64, result: &Result<T, RedisError>) {
        let Some(readonly) = result
            .as_ref()
            .err()
            .and_then(|error| self.endpoint.reading(error))
        else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            if this.endpoint.may_look_again().await {
                this.follow_primary(generation, readonly).await;
            }
        });
    }

    fn run<'a, T: Send + 'a>(
        &'a mut self,
        name: impl FnOnce() -> &'static str + Send + 'a,
        call: impl FnOnce(ConnectionManager) -> BoxFuture<'a, Result<T, RedisError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, RedisError>> {
        let (generation, manager) = self.current();
        async move {
            let result = self.timing.time(name, call(manager)).await;
            self.after(generation, &result);
            result
        }
        .boxed()
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.run(
            || timed::command_name(cmd),
            move |mut manager| async move { manager.req_packed_command(cmd).await }.boxed(),
        )
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.run(
            || timed::PIPELINE,
            move |mut manager| {
                async move { manager.req_packed_commands(cmd, offset, count).await }.boxed()
            },
        )
    }

    fn get_db(&self) -> i64 {
        self.current().1.get_db()
    }
}
