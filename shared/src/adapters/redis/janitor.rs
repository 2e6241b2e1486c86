//! The Redis adapter of the cluster janitor port, for the cleanup function: the nodes' own `REAP`
//! script (counting only in a dry run), and two small scripts that read leases with their owners'
//! heartbeats, and the nodes' own `FORGET` of a stopped conversation (its running-set member and keys). Every key is named from the
//! ids it is given or reads (`keys.rs`): a pass never walks the key space.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokio::sync::OnceCell;

use super::connection::{Commands, Endpoint, RedisAccess};
use super::coordination::{DEFAULT_RETENTION, millis, unavailable};
use super::keys::Keys;
use super::leases::forget;
use super::liveness::{ReapOutcome, run_reap};
use crate::domain::{ConversationId, UserId};
use crate::ports::ClusterJanitor;
use crate::ports::Reaped;
use crate::ports::coordination::CoordinationError;

/// KEYS: nodes, then a lease key per conversation. ARGV: silence ms. Returns the 1-based positions of
/// the leases held by a node that beat within the silence, or that never beat (its TTL ends those).
static LIVE_LEASES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = redis.call('TIME')
local cutoff = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[1])
local live = {}
for i = 2, #KEYS do
  local owner = redis.call('HGET', KEYS[i], 'owner')
  if owner then
    local beat = redis.call('ZSCORE', KEYS[1], owner)
    if not beat or tonumber(beat) > cutoff then table.insert(live, i - 1) end
  end
end
return live
"#,
    )
});

/// Connects on first use (and after a failed attempt, on the next), so that a Redis that is down fails
/// the cleanup's cluster steps only, not the process.
pub struct RedisJanitor {
    url: String,
    access: RedisAccess,
    keys: Keys,
    commands: OnceCell<Commands>,
}

impl RedisJanitor {
    /// The janitor of the cluster on the Redis at `url`, whose keys start with `key_prefix`.
    pub fn new(url: &str, key_prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            access: RedisAccess::default(),
            keys: Keys::new(key_prefix),
            commands: OnceCell::new(),
        }
    }

    /// Connects with `access` (TLS roots, `AUTH` token) rather than none.
    pub fn with_access(self, access: RedisAccess) -> Self {
        Self { access, ..self }
    }

    async fn commands(&self) -> Result<Commands, CoordinationError> {
        let connect =
            || async { Commands::connect(Endpoint::new(&self.url, None, &self.access)?).await };
        self.commands.get_or_try_init(connect).await.cloned()
    }
}

#[async_trait]
impl ClusterJanitor for RedisJanitor {
    async fn reap_silent_nodes(
        &self,
        silence: Duration,
        count_only: bool,
    ) -> Result<Reaped, CoordinationError> {
        // Only silence counts here: a node whose connection is merely gone may be reconnecting, and
        // the live nodes reap those within seconds anyway.
        let ReapOutcome { reaped, .. } = run_reap(
            &mut self.commands().await?,
            &self.keys,
            silence,
            Vec::new(),
            count_only,
        )
        .await?;
        Ok(reaped)
    }

    async fn live_runs(
        &self,
        conversations: &[ConversationId],
        silence: Duration,
    ) -> Result<HashSet<ConversationId>, CoordinationError> {
        if conversations.is_empty() {
            return Ok(HashSet::new());
        }
        let mut invocation = LIVE_LEASES.key(self.keys.nodes());
        invocation.arg(millis(silence));
        for conversation in conversations {
            invocation.key(self.keys.lease(conversation));
        }
        let live: Vec<usize> = invocation
            .invoke_async(&mut self.commands().await?)
            .await
            .map_err(unavailable)?;
        Ok(live
            .into_iter()
            .filter_map(|position| conversations.get(position.checked_sub(1)?))
            .cloned()
            .collect())
    }

    async fn forget_running(
        &self,
        conversation: &ConversationId,
        user_id: &UserId,
    ) -> Result<bool, CoordinationError> {
        let mut commands = self.commands().await?;
        forget(
            &mut commands,
            &self.keys,
            conversation,
            user_id,
            DEFAULT_RETENTION,
        )
        .await
    }
}
