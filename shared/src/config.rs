//! Configuration from the environment (the same names in Lambda, in the container and locally), and
//! the choice of adapters it implies: DynamoDB/EventBridge when AWS is configured, embedded otherwise.
//! A secret value not in the environment comes from the secret of `SECRETS_ARN` (see [`crate::secrets`]).

use std::env;
use std::path::PathBuf;
use std::str::FromStr;

/// A configuration problem found at start; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing configuration: {0} must be set")]
    Missing(&'static str),
    #[error("invalid configuration: {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads one variable; an empty value counts as unset. Unset in the environment, it is the value of
/// the same name in the process's secret, once [`crate::secrets::load`] has read it.
pub fn var(name: &'static str) -> Option<String> {
    env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| crate::secrets::value(name))
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name).ok_or(ConfigError::Missing(name))
}

/// Reads and parses one variable, falling back to `default` when unset.
pub fn parsed<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// A boolean flag: `true/false`, `1/0`, `yes/no`, `on/off`.
pub fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "expected true or false".into(),
        }),
    }
}

/// Where state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded file-backed store under `DATA_DIR` (local runs).
    Embedded { data_dir: PathBuf },
    /// DynamoDB, selected by `AWS_ENDPOINT_URL`, a table name, or running inside Lambda.
    DynamoDb { tables: TableNames },
}

/// DynamoDB table names (`PROACTIVE_TABLE`, `CONVERSATIONS_TABLE`, `EVENTS_TABLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Repository registry, workflow-run groups, processed deliveries, outbox, sync watermark.
    pub proactive: String,
    /// Conversation metadata.
    pub conversations: String,
    /// Conversation events.
    pub events: String,
}

impl TableNames {
    pub fn from_env() -> Self {
        Self {
            proactive: var("PROACTIVE_TABLE").unwrap_or_else(|| "proactive".into()),
            conversations: var("CONVERSATIONS_TABLE").unwrap_or_else(|| "conversations".into()),
            events: var("EVENTS_TABLE").unwrap_or_else(|| "conversation-events".into()),
        }
    }
}

impl StoreBackend {
    pub fn from_env() -> Self {
        let aws_configured = [
            "AWS_ENDPOINT_URL",
            "AWS_LAMBDA_FUNCTION_NAME",
            "PROACTIVE_TABLE",
        ]
        .into_iter()
        .any(|name| var(name).is_some());
        if aws_configured {
            Self::DynamoDb {
                tables: TableNames::from_env(),
            }
        } else {
            Self::Embedded {
                data_dir: var("DATA_DIR").unwrap_or_else(|| "./data".into()).into(),
            }
        }
    }
}

/// Where events go: EventBridge when `EVENT_BUS_NAME` is set, the in-process bus otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusBackend {
    InProcess,
    EventBridge { bus_name: String },
}

impl BusBackend {
    pub fn from_env() -> Self {
        match var("EVENT_BUS_NAME") {
            Some(bus_name) => Self::EventBridge { bus_name },
            None => Self::InProcess,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_accept_the_usual_spellings_and_name_the_variable_otherwise() {
        // Unset variables fall back to the default without touching the process environment.
        assert_eq!(flag("CONFIG_TEST_UNSET_FLAG", true), Ok(true));
        assert_eq!(parsed::<u32>("CONFIG_TEST_UNSET_NUMBER", 7), Ok(7));
        assert_eq!(
            required("CONFIG_TEST_UNSET_VALUE"),
            Err(ConfigError::Missing("CONFIG_TEST_UNSET_VALUE"))
        );
    }
}
