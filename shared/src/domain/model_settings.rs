//! The model a conversation's agent uses instead of the node's (`LLM_*`), chosen when it is created.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The longest model name or base URL accepted.
const MAX_SETTING_CHARS: usize = 512;

/// A conversation's own model: `model` (LiteLLM's names for `openhands`, the endpoint's for `llm`),
/// optionally at its own OpenAI-compatible `base_url` with its own key. A `base_url` without a key
/// is called without one: the node's key never goes to an address the user chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSettings {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
}

/// A model's API key: stored with the conversation, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Why model settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidModelSettings(&'static str);

impl ModelSettings {
    /// Settings from a request's fields: `None` when none is given; a key or base URL needs a model.
    pub fn parse(
        model: Option<&str>,
        base_url: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Option<Self>, InvalidModelSettings> {
        let [model, base_url, api_key] =
            [model, base_url, api_key].map(|value| value.map(str::trim).filter(|v| !v.is_empty()));
        let Some(model) = model else {
            return match base_url.or(api_key) {
                Some(_) => Err(InvalidModelSettings(
                    "llm_base_url and llm_api_key need llm_model",
                )),
                None => Ok(None),
            };
        };
        if [Some(model), base_url, api_key]
            .iter()
            .flatten()
            .any(|value| {
                value.chars().count() > MAX_SETTING_CHARS || value.contains(char::is_control)
            })
        {
            return Err(InvalidModelSettings(
                "llm_model, llm_base_url and llm_api_key are at most 512 printable characters",
            ));
        }
        if let Some(url) = base_url {
            check_base_url(url)?;
        }
        Ok(Some(Self {
            model: model.to_owned(),
            base_url: base_url.map(|url| url.trim_end_matches('/').to_owned()),
            api_key: api_key.map(|key| ApiKey(key.to_owned())),
        }))
    }
}

/// An `http(s)` URL that is not the cloud's instance metadata (where a user-chosen address could
/// read the node's own credentials).
fn check_base_url(raw: &str) -> Result<(), InvalidModelSettings> {
    let url = Url::parse(raw).map_err(|_| InvalidModelSettings("llm_base_url is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(InvalidModelSettings("llm_base_url must be an http(s) URL"));
    }
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let link_local = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            ip.segments()[0] & 0xffc0 == 0xfe80 || ip.segments()[..4] == [0xfd00, 0xec2, 0, 0]
        }
        Err(_) => false,
    };
    if link_local {
        return Err(InvalidModelSettings(
            "llm_base_url may not be a link-local address",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_given_is_no_settings_and_a_key_needs_a_model() {
        assert_eq!(ModelSettings::parse(None, Some(" "), None), Ok(None));
        assert!(ModelSettings::parse(None, None, Some("sk-1")).is_err());
        assert!(ModelSettings::parse(None, Some("https://m.example/v1"), None).is_err());
    }

    #[test]
    fn settings_are_trimmed_and_the_key_never_printed() {
        let settings = ModelSettings::parse(
            Some(" gpt-x "),
            Some("https://m.example/v1/"),
            Some("sk-secret"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.model, "gpt-x");
        assert_eq!(settings.base_url.as_deref(), Some("https://m.example/v1"));
        assert_eq!(
            settings.api_key.as_ref().map(ApiKey::expose),
            Some("sk-secret")
        );
        assert!(!format!("{settings:?}").contains("sk-secret"));
    }

    #[test]
    fn base_urls_are_http_and_not_the_instance_metadata() {
        for url in [
            "ftp://m.example/v1",
            "not a url",
            "http://169.254.169.254/latest",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/v1",
        ] {
            assert!(
                ModelSettings::parse(Some("m"), Some(url), None).is_err(),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1:3002/v1",
            "https://api.openai.com/v1",
            "http://[::1]:80/",
        ] {
            assert!(
                ModelSettings::parse(Some("m"), Some(url), None).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn too_long_or_control_characters_are_refused() {
        assert!(ModelSettings::parse(Some(&"m".repeat(513)), None, None).is_err());
        assert!(ModelSettings::parse(Some("m"), None, Some("sk\n1")).is_err());
    }
}
