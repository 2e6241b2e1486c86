//! `GitHubConfig` from the environment, and `Debug` for credentials that never prints them.

use std::fmt;

use super::auth::AppKey;
use super::{GitHubAuth, GitHubConfig};
use crate::config::{self, ConfigError};

/// GitHub's public API; GitHub Enterprise Server and local fakes set `GITHUB_API_URL`.
pub(super) const DEFAULT_API_URL: &str = "https://api.github.com";

impl GitHubConfig {
    /// Reads `GITHUB_API_URL`, then either `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY` (an App, preferred
    /// when both kinds are set) or `GITHUB_TOKEN`; neither means anonymous access.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(config::var)
    }

    /// `from_env` over any source of variables (an unset or empty variable is `None`).
    pub fn from_vars(var: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let api_url = api_url(var("GITHUB_API_URL"))?;
        let auth = match (var("GITHUB_APP_ID"), var("GITHUB_APP_PRIVATE_KEY")) {
            (Some(app_id), Some(pem)) => {
                let app_id = app_id.trim().parse().map_err(|_| ConfigError::Invalid {
                    name: "GITHUB_APP_ID",
                    reason: "expected the App's numeric id".into(),
                })?;
                // Secret stores and `.env` files often hold the PEM on one line with `\n` escapes.
                let private_key_pem = pem.trim().replace("\\n", "\n");
                AppKey::parse(&private_key_pem).map_err(|reason| ConfigError::Invalid {
                    name: "GITHUB_APP_PRIVATE_KEY",
                    reason,
                })?;
                GitHubAuth::App {
                    app_id,
                    private_key_pem,
                }
            }
            (Some(_), None) => return Err(ConfigError::Missing("GITHUB_APP_PRIVATE_KEY")),
            (None, Some(_)) => return Err(ConfigError::Missing("GITHUB_APP_ID")),
            (None, None) => match var("GITHUB_TOKEN") {
                Some(token) => GitHubAuth::Token(token.trim().to_owned()),
                None => GitHubAuth::Anonymous,
            },
        };
        Ok(Self { api_url, auth })
    }
}

fn api_url(raw: Option<String>) -> Result<String, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_API_URL.to_owned());
    };
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "GITHUB_API_URL",
        reason: reason.into(),
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("expected an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("expected a base URL without query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::App { app_id, .. } => f
                .debug_struct("App")
                .field("app_id", app_id)
                .field("private_key_pem", &"<redacted>")
                .finish(),
        }
    }
}

impl fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("api_url", &self.api_url)
            .field("auth", &self.auth)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&'static str, &str)]) -> Result<GitHubConfig, ConfigError> {
        let vars: HashMap<&'static str, String> =
            pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        GitHubConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_to_anonymous_access_to_the_public_api() {
        let config = from(&[]).unwrap();
        assert_eq!(config.api_url, DEFAULT_API_URL);
        assert!(matches!(config.auth, GitHubAuth::Anonymous));
    }

    #[test]
    fn a_token_is_used_and_never_printed() {
        let config = from(&[
            ("GITHUB_TOKEN", "ghp_secret"),
            ("GITHUB_API_URL", "http://127.0.0.1:3001/"),
        ])
        .unwrap();
        assert_eq!(config.api_url, "http://127.0.0.1:3001");
        assert!(matches!(&config.auth, GitHubAuth::Token(t) if t == "ghp_secret"));
        assert!(!format!("{config:?}").contains("ghp_secret"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let invalid = |pairs: &[(&'static str, &str)]| match from(pairs) {
            Err(ConfigError::Invalid { name, .. }) => name,
            other => panic!("expected an invalid value, got {other:?}"),
        };
        assert_eq!(
            invalid(&[("GITHUB_API_URL", "not a url")]),
            "GITHUB_API_URL"
        );
        assert_eq!(
            invalid(&[("GITHUB_API_URL", "ftp://example.com")]),
            "GITHUB_API_URL"
        );
        assert_eq!(
            invalid(&[("GITHUB_API_URL", "https://x.test/api?v=3")]),
            "GITHUB_API_URL"
        );
        assert_eq!(
            invalid(&[
                ("GITHUB_APP_ID", "1"),
                ("GITHUB_APP_PRIVATE_KEY", "not a key")
            ]),
            "GITHUB_APP_PRIVATE_KEY"
        );
        assert_eq!(
            from(&[("GITHUB_APP_ID", "1")]).unwrap_err(),
            ConfigError::Missing("GITHUB_APP_PRIVATE_KEY")
        );
    }
}
