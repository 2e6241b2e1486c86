//! The node's configuration from the environment (see `docs/node.md` for every variable). Secrets are
//! kept out of `Debug`: this type is never printed whole.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use shared::adapters::redis::{AckReplicas, Keys, RedisAccess, RedisSettings, SentinelSettings};
use shared::config::{self, BusBackend, ConfigError, StoreBackend};
use shared::domain::NodeId;
use shared::ports::coordination::LimitPolicy;

use crate::action_rate::ActionRate;
use crate::agent::prompt::DEFAULT_SYSTEM_PROMPT;

/// How bearer tokens are verified. There is no "off": a node always checks tokens.
#[derive(Clone)]
pub enum JwtKeys {
    /// A shared HS256 secret (local runs, tests).
    Hs256Secret(String),
    /// A JWKS URL (e.g. a Keycloak realm's `.../protocol/openid-connect/certs`).
    JwksUrl(String),
}

#[derive(Clone)]
pub struct AuthConfig {
    pub keys: JwtKeys,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// `JWT_LEEWAY`: how far `exp` and `nbf` may be off (clock skew between issuer and node).
    pub leeway: Duration,
    /// `SESSION_API_KEY`: when set, every client presents it (Socket.IO query `session_api_key`, REST
    /// header `X-Session-API-Key`).
    pub session_api_key: Option<String>,
    /// `INTERNAL_API_KEY`: the key `POST /internal/proactive` requires (header `X-Api-Key`); without it
    /// the endpoint refuses every call.
    pub internal_api_key: Option<String>,
}

/// Per-user limits, idle close, and how much a client's connection may queue.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_running: usize,
    pub policy: LimitPolicy,
    pub close_delay: Duration,
    /// Packets a client's connection may hold unsent; a client that falls further behind gets its
    /// events from the store once it has caught up (socketioxide's default: 128).
    pub socket_buffer: usize,
    /// How fast each user may act (Socket.IO and REST together).
    pub action_rate: ActionRate,
}

/// Cadences of the cluster work, the original's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    /// How often the node looks for dead peers: their channel's listener gone shows a crash at once,
    /// so this, not the heartbeat, bounds how soon a crashed node's conversations are taken over.
    pub peer_check: Duration,
    pub sweep: Duration,
    /// How long a request to another node's conversation (a stop, an LLM completion) may take.
    pub owner_call_timeout: Duration,
    /// How long SIGTERM waits for connections to close before the process exits anyway.
    pub shutdown_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            peer_check: Duration::from_secs(1),
            sweep: Duration::from_secs(15),
            owner_call_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Clone)]
pub struct LlmConfig {
    /// Up to and without `/chat/completions`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Retries after the first attempt, on 429, 5xx and transport failures.
    pub num_retries: u32,
    pub retry_min_wait: Duration,
    pub retry_max_wait: Duration,
    /// What a conversation's turns start with (`LLM_SYSTEM_PROMPT`).
    pub system_prompt: String,
    /// The most a turn's request may hold, in estimated tokens (`LLM_MAX_INPUT_TOKENS`): the oldest
    /// turns leave the request beyond it.
    pub max_input_tokens: usize,
}

/// Which runtime runs the conversations' agents (`AGENT_RUNTIME`).
#[derive(Clone)]
pub enum RuntimeConfig {
    /// `builtin` or `llm`: each message is answered at once, by [`NodeConfig::llm`]'s model, or by the
    /// built-in agent without one.
    Chat,
    /// `openhands`: an OpenHands agent-server runs each conversation's agent and its tools.
    OpenHands(OpenHandsConfig),
}

/// The agent an agent-server runs for each conversation.
#[derive(Clone)]
pub struct OpenHandsConfig {
    /// LiteLLM's model name (`LLM_MODEL`; a bare name with an `LLM_BASE_URL` gets `openai/`, the
    /// OpenAI-compatible route).
    pub model: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub servers: AgentServers,
    /// The agent's tools (`AGENT_TOOLS`): the SDK's defaults without the browser.
    pub tools: Vec<String>,
    /// The most steps the agent takes for one message (`AGENT_MAX_ITERATIONS`).
    pub max_iterations: u32,
}

/// Where the agent-servers come from (`AGENT_SERVER`).
#[derive(Clone)]
pub enum AgentServers {
    /// `process`: the node starts and supervises one on loopback (`AGENT_SERVER_PYTHON` has it
    /// installed); its state and the conversations' workspaces live under `data_dir`.
    Process { python: String, data_dir: PathBuf },
    /// `remote`: one run by the operator (`AGENT_SERVER_URL`, `AGENT_SERVER_API_KEY`); workspaces
    /// under `workspace_root` on its side (`AGENT_SERVER_WORKSPACE_ROOT`).
    Remote {
        url: String,
        api_key: Option<String>,
        workspace_root: String,
    },
}

/// Where the cluster state lives.
#[derive(Clone)]
pub enum CoordinationBackend {
    /// In-process: this node alone.
    Standalone,
    /// Redis (`REDIS_URL`, or the primary `REDIS_SENTINELS` name): a cluster of nodes; see
    /// [`redis_from_env`] for the settings. Its lease TTL is `LEASE_TTL`.
    Redis(Box<RedisSettings>),
}

#[derive(Clone)]
pub struct NodeConfig {
    pub port: u16,
    /// `METRICS_ADDR`: where `/metrics` and `/ready` are served, apart from the public port (which
    /// the load balancer routes).
    pub metrics_addr: SocketAddr,
    pub node_id: NodeId,
    /// The base URL users open conversations at (links in PR comments).
    pub public_url: String,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub timing: Timing,
    /// `None`: the built-in agent answers (no model configured).
    pub llm: Option<LlmConfig>,
    pub runtime: RuntimeConfig,
    pub coordination: CoordinationBackend,
    pub store: StoreBackend,
    pub bus: BusBackend,
    /// `PROACTIVE_DEFAULT`: whether a user who never chose gets proactive conversations.
    pub proactive_default: bool,
}

/// Where the metrics listener binds unless `METRICS_ADDR` says otherwise.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9464);

/// Reads a duration in seconds (decimals allowed: `0.5`).
pub fn seconds(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    let value = config::parsed(name, default.as_secs_f64())?;
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::Invalid {
        name,
        reason: "expected a non-negative number of seconds".into(),
    })
}

impl NodeConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let port = config::parsed("PORT", 3000u16)?;
        let metrics_addr = config::parsed("METRICS_ADDR", DEFAULT_METRICS_ADDR)?;
        let keys = match (config::var("JWT_HS256_SECRET"), config::var("JWT_JWKS_URL")) {
            (Some(secret), None) => JwtKeys::Hs256Secret(secret),
            (None, Some(url)) => JwtKeys::JwksUrl(url),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "JWT_JWKS_URL",
                    reason: "set either JWT_HS256_SECRET or JWT_JWKS_URL, not both".into(),
                });
            }
            (None, None) => return Err(ConfigError::Missing("JWT_HS256_SECRET or JWT_JWKS_URL")),
        };
        let policy = match config::var("CONVERSATION_LIMIT_POLICY").as_deref() {
            None | Some("evict") => LimitPolicy::EvictOldest,
            Some("reject") => LimitPolicy::Reject,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "CONVERSATION_LIMIT_POLICY",
                    reason: "expected evict or reject".into(),
                });
            }
        };
        let max_running = config::parsed("MAX_CONCURRENT_CONVERSATIONS", 3usize)?;
        if max_running == 0 {
            return Err(ConfigError::Invalid {
                name: "MAX_CONCURRENT_CONVERSATIONS",
                reason: "expected at least 1".into(),
            });
        }
        let defaults = Timing::default();
        let timing = Timing {
            lease_ttl: seconds("LEASE_TTL", defaults.lease_ttl)?,
            heartbeat: seconds("HEARTBEAT_INTERVAL", defaults.heartbeat)?,
            peer_check: seconds("PEER_CHECK_INTERVAL", defaults.peer_check)?,
            sweep: seconds("SWEEP_INTERVAL", defaults.sweep)?,
            owner_call_timeout: seconds("OWNER_CALL_TIMEOUT", defaults.owner_call_timeout)?,
            shutdown_grace: seconds("SHUTDOWN_GRACE", defaults.shutdown_grace)?,
        };
        for (name, every) in [
            ("HEARTBEAT_INTERVAL", timing.heartbeat),
            ("PEER_CHECK_INTERVAL", timing.peer_check),
            ("SWEEP_INTERVAL", timing.sweep),
        ] {
            if every.is_zero() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "expected more than 0 seconds".into(),
                });
            }
        }
        if timing.heartbeat >= timing.lease_ttl {
            return Err(ConfigError::Invalid {
                name: "HEARTBEAT_INTERVAL",
                reason: "must be shorter than LEASE_TTL".into(),
            });
        }
        let (llm, runtime) = runtime_from_env()?;
        Ok(Self {
            port,
            metrics_addr,
            node_id: config::var("NODE_ID")
                .map(|id| NodeId::new(&id))
                .unwrap_or_else(NodeId::random),
            public_url: config::var("PUBLIC_URL")
                .unwrap_or_else(|| format!("http://localhost:{port}"))
                .trim_end_matches('/')
                .to_owned(),
            auth: AuthConfig {
                keys,
                issuer: config::var("JWT_ISSUER"),
                audience: config::var("JWT_AUDIENCE"),
                leeway: seconds("JWT_LEEWAY", Duration::from_secs(60))?,
                session_api_key: config::var("SESSION_API_KEY"),
                internal_api_key: config::var("INTERNAL_API_KEY"),
            },
            limits: Limits {
                max_running,
                policy,
                close_delay: seconds("CLOSE_DELAY", Duration::from_secs(3600))?,
                socket_buffer: config::parsed("SOCKET_BUFFER_PACKETS", 1024usize)?.max(1),
                action_rate: action_rate_from_env()?,
            },
            timing,
            llm,
            runtime,
            coordination: match redis_from_env(timing.lease_ttl)? {
                Some(settings) => CoordinationBackend::Redis(Box::new(settings)),
                None => CoordinationBackend::Standalone,
            },
            store: StoreBackend::from_env(),
            bus: BusBackend::from_env(),
            proactive_default: shared::proactive::proactive_default_from_env()?,
        })
    }
}

/// The cluster's Redis, if one is named: `REDIS_URL` (a fixed endpoint; `rediss://` for TLS), or
/// `REDIS_SENTINELS` (`host:port,...`, plain TCP) with `REDIS_SENTINEL_MASTER` (default `mymaster`);
/// `REDIS_AUTH_TOKEN` and `REDIS_TLS_CA_FILE` (see [`RedisAccess`]); `REDIS_KEY_PREFIX`;
/// `REDIS_ACK_REPLICAS` (`auto`: one while the primary has a replica; or a number) within
/// `REDIS_ACK_TIMEOUT` (1 s); `REDIS_RETENTION` (a day): how long a stopped conversation's keys stay;
/// `PEER_DEPARTURE_GRACE` (0.5 s): how long a node whose channel lost its subscriber has to beat.
fn redis_from_env(lease_ttl: Duration) -> Result<Option<RedisSettings>, ConfigError> {
    let sentinel = config::var("REDIS_SENTINELS").map(|list| SentinelSettings {
        sentinels: list
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_owned)
            .collect(),
        master: config::var("REDIS_SENTINEL_MASTER").unwrap_or_else(|| "mymaster".into()),
    });
    let url = match (config::var("REDIS_URL"), &sentinel) {
        (Some(url), _) => url,
        (None, Some(_)) => String::new(),
        (None, None) => return Ok(None),
    };
    let key_prefix =
        config::var("REDIS_KEY_PREFIX").unwrap_or_else(|| Keys::DEFAULT_PREFIX.to_owned());
    let mut settings = RedisSettings::new(&url, &key_prefix, lease_ttl);
    settings.sentinel = sentinel;
    settings.access = RedisAccess::from_env();
    settings.ack_replicas = match config::var("REDIS_ACK_REPLICAS").as_deref() {
        None | Some("auto") => AckReplicas::Auto,
        Some(count) => AckReplicas::Exactly(count.parse().map_err(|_| ConfigError::Invalid {
            name: "REDIS_ACK_REPLICAS",
            reason: "expected auto or a number of replicas".into(),
        })?),
    };
    settings.ack_timeout = seconds("REDIS_ACK_TIMEOUT", settings.ack_timeout)?;
    settings.retention = seconds("REDIS_RETENTION", settings.retention)?;
    settings.departure_grace = seconds("PEER_DEPARTURE_GRACE", settings.departure_grace)?;
    Ok(Some(settings))
}

fn action_rate_from_env() -> Result<ActionRate, ConfigError> {
    let defaults = ActionRate::default();
    Ok(ActionRate {
        per_second: config::parsed::<NonZeroU32>("ACTION_RATE_PER_SECOND", defaults.per_second)?,
        burst: config::parsed::<NonZeroU32>("ACTION_RATE_BURST", defaults.burst)?,
    })
}

/// The runtime `AGENT_RUNTIME` names, and the chat model it leaves to `request_llm_completion` and
/// the chat runtime. Unset: `llm` when `LLM_BASE_URL` is set, else `builtin`.
fn runtime_from_env() -> Result<(Option<LlmConfig>, RuntimeConfig), ConfigError> {
    let llm = llm_from_env()?;
    match config::var("AGENT_RUNTIME").as_deref() {
        None => Ok((llm, RuntimeConfig::Chat)),
        Some("builtin") => Ok((None, RuntimeConfig::Chat)),
        Some("llm") if llm.is_none() => Err(ConfigError::Missing("LLM_BASE_URL")),
        Some("llm") => Ok((llm, RuntimeConfig::Chat)),
        Some("openhands") => Ok((llm, RuntimeConfig::OpenHands(openhands_from_env()?))),
        Some(_) => Err(ConfigError::Invalid {
            name: "AGENT_RUNTIME",
            reason: "expected builtin, llm or openhands".into(),
        }),
    }
}

/// LiteLLM's name of `model`: a bare name served at an OpenAI-compatible base URL gets `openai/`.
pub(crate) fn litellm_model(model: &str, base_url: Option<&str>) -> String {
    match base_url {
        Some(_) if !model.contains('/') => format!("openai/{model}"),
        _ => model.to_owned(),
    }
}

fn openhands_from_env() -> Result<OpenHandsConfig, ConfigError> {
    let base_url = config::var("LLM_BASE_URL").map(|url| url.trim_end_matches('/').to_owned());
    let model = config::required("LLM_MODEL")?;
    let model = litellm_model(&model, base_url.as_deref());
    let mode =
        config::var("AGENT_SERVER").unwrap_or_else(|| match config::var("AGENT_SERVER_URL") {
            Some(_) => "remote".into(),
            None => "process".into(),
        });
    let servers = match mode.as_str() {
        "process" => AgentServers::Process {
            python: config::var("AGENT_SERVER_PYTHON").unwrap_or_else(|| "python3".into()),
            data_dir: config::var("DATA_DIR")
                .unwrap_or_else(|| "./data".into())
                .into(),
        },
        "remote" => AgentServers::Remote {
            url: config::required("AGENT_SERVER_URL")?
                .trim_end_matches('/')
                .to_owned(),
            api_key: config::var("AGENT_SERVER_API_KEY"),
            workspace_root: config::var("AGENT_SERVER_WORKSPACE_ROOT")
                .unwrap_or_else(|| "/workspace".into()),
        },
        _ => {
            return Err(ConfigError::Invalid {
                name: "AGENT_SERVER",
                reason: "expected process or remote".into(),
            });
        }
    };
    let tools = config::var("AGENT_TOOLS")
        .unwrap_or_else(|| "terminal,file_editor,task_tracker".into())
        .split(',')
        .map(str::trim)
        .filter(|tool| !tool.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(OpenHandsConfig {
        model,
        base_url,
        api_key: config::var("LLM_API_KEY"),
        servers,
        tools,
        max_iterations: config::parsed("AGENT_MAX_ITERATIONS", 100u32)?,
    })
}

fn llm_from_env() -> Result<Option<LlmConfig>, ConfigError> {
    let Some(base_url) = config::var("LLM_BASE_URL") else {
        return Ok(None);
    };
    Ok(Some(LlmConfig {
        base_url: base_url.trim_end_matches('/').to_owned(),
        model: config::required("LLM_MODEL")?,
        api_key: config::var("LLM_API_KEY"),
        timeout: seconds("LLM_TIMEOUT", Duration::from_secs(120))?,
        num_retries: config::parsed("LLM_NUM_RETRIES", 4u32)?,
        retry_min_wait: seconds("LLM_RETRY_MIN_WAIT", Duration::from_secs(1))?,
        retry_max_wait: seconds("LLM_RETRY_MAX_WAIT", Duration::from_secs(30))?,
        system_prompt: config::var("LLM_SYSTEM_PROMPT")
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
        max_input_tokens: config::parsed("LLM_MAX_INPUT_TOKENS", 100_000usize)?,
    }))
}
