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
