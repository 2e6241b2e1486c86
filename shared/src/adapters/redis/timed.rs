//! How long each Redis command takes, told to a hook the adapter's user installs
//! ([`RedisSettings::timing`](super::RedisSettings)): the node feeds its latency histogram with it.
//! Each command is named by its first word (`EVALSHA`, `XRANGE`, ...), a pipeline `PIPELINE`. Names
//! are interned once each, so that an observation allocates nothing.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::{Arg, Cmd};

/// The name a pipeline is timed under.
pub(super) const PIPELINE: &str = "PIPELINE";
/// The name of a command whose first word is not a plain ASCII word (never sent by the adapter).
const UNNAMED: &str = "UNNAMED";

/// Told how long each command took, from sending it to its reply (or its failure).
pub trait CommandTimer: Send + Sync {
    fn observe(&self, command: &'static str, elapsed: Duration);
}

/// The hook commands are timed with, if any (none: nothing is measured).
#[derive(Clone, Default)]
pub struct CommandTiming(Option<Arc<dyn CommandTimer>>);

impl std::fmt::Debug for CommandTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CommandTiming(on)"
        } else {
            "CommandTiming(off)"
        })
    }
}

impl CommandTiming {
    pub fn new(timer: Arc<dyn CommandTimer>) -> Self {
        Self(Some(timer))
    }

    /// Runs `command` and tells the hook how long it took under the name `name` gives (asked only
    /// when there is a hook).
    pub(super) async fn time<T>(
        &self,
        name: impl FnOnce() -> &'static str,
        command: impl Future<Output = T>,
    ) -> T {
        let Some(timer) = &self.0 else {
            return command.await;
        };
        let started = Instant::now();
        let outcome = command.await;
        timer.observe(name(), started.elapsed());
        outcome
    }
}

/// A command's name: its first word, upper-cased.
pub(super) fn command_name(cmd: &Cmd) -> &'static str {
    match cmd.args_iter().next() {
        Some(Arg::Simple(word)) => intern(word),
        _ => UNNAMED,
    }
}

/// The commands named so far: the adapter sends a few dozen kinds at most, each leaked once.
static NAMES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

fn intern(word: &[u8]) -> &'static str {
    if word.is_empty() || word.len() > 32 || !word.iter().all(u8::is_ascii_alphabetic) {
        return UNNAMED;
    }
    let find = |names: &[&'static str]| {
        names
            .iter()
            .copied()
            .find(|name| name.as_bytes().eq_ignore_ascii_case(word))
    };
    if let Some(name) = find(&NAMES.read().unwrap_or_else(|p| p.into_inner())) {
        return name;
    }
    let mut names = NAMES.write().unwrap_or_else(|p| p.into_inner());
    if let Some(name) = find(&names) {
        return name;
    }
    let name: &'static str = String::from_utf8_lossy(word).to_ascii_uppercase().leak();
    names.push(name);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_named_by_its_first_word_once() {
        let first = command_name(redis::cmd("xrange").arg("key").arg("-").arg("+"));
        let again = command_name(&redis::cmd("XRANGE"));
        assert_eq!(first, "XRANGE");
        assert!(std::ptr::eq(first, again), "interned once");
        assert_eq!(command_name(&redis::cmd("not a word")), UNNAMED);
    }
}
