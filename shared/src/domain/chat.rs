//! Chat messages as an OpenAI-compatible chat-completions API takes them: the agent's view of a
//! conversation, and the payload of `request_llm_completion`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: &str) -> Self {
        Self {
            role,
            content: content.to_owned(),
        }
    }
}

/// The text of a message's content as chat APIs and the OpenHands SDK write it: a string, or a list of
/// parts whose `text`s are joined by newlines.
pub fn content_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
