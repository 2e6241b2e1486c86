//! The built-in agent, used when no model is configured: it answers deterministically, says so, and
//! echoes a summary of what it received, so that the whole product runs with no account.

use shared::domain::{ChatMessage, ChatRole};

/// Every built-in answer starts with this label.
pub(crate) const LABEL: &str = "[built-in agent: no model is configured]";
/// How much of the user's message the answer quotes.
const EXCERPT_CHARS: usize = 200;

pub(crate) fn answer(messages: &[ChatMessage]) -> String {
    let user_messages: Vec<&ChatMessage> = messages
        .iter()
        .filter(|message| message.role == ChatRole::User)
        .collect();
    let Some(last) = user_messages.last() else {
        return format!("{LABEL} There is no message to answer yet.");
    };
    let mut excerpt: String = last.content.chars().take(EXCERPT_CHARS).collect();
    if last.content.chars().count() > EXCERPT_CHARS {
        excerpt.push('…');
    }
    format!(
        "{LABEL} I received your message ({count} in this conversation so far): \"{excerpt}\". \
         Set LLM_BASE_URL and LLM_MODEL to have a model answer.",
        count = user_messages.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_labelled_and_summarise_the_last_message() {
        let messages = [
            ChatMessage::new(ChatRole::User, "first"),
            ChatMessage::new(ChatRole::Assistant, "ok"),
            ChatMessage::new(ChatRole::User, "fix the tests"),
        ];
        let answer = answer(&messages);
        assert!(answer.starts_with(LABEL));
        assert!(answer.contains("\"fix the tests\""));
        assert!(answer.contains("2 in this conversation"));
        let long = "é".repeat(500);
        let answer = super::answer(&[ChatMessage::new(ChatRole::User, &long)]);
        assert!(answer.contains(&format!("{}…", "é".repeat(EXCERPT_CHARS))));
    }
}
