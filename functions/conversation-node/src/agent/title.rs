//! A conversation's title, made from its first message when none was given on create: the owner's
//! model names it (`request_llm_completion`, from whichever node serves the message), in the
//! background so that no answer waits for a model. Without a model (the built-in agent), or when the
//! model fails or nobody runs the conversation, the message's first words do. Written only where the
//! conversation has no title yet: one given on create, or made first by another node, stays.

use std::sync::Arc;

use shared::domain::{ChatMessage, ChatRole, Conversation, ConversationId};
use shared::ports::ConversationStore;

use crate::calls::OwnerCalls;
use crate::lifecycle::Lifecycle;

/// The most words of a title: asked of the model, taken from the message for a plain one.
const TITLE_WORDS: usize = 8;
/// How much of the message the prompt quotes: its start names it well enough, and the prompt stays
/// short however long the message.
const PROMPT_EXCERPT_CHARS: usize = 1_000;
/// What a model may wrap its title in.
const QUOTES: &[char] = &['"', '\'', '`', '“', '”', '‘', '’', '«', '»'];

/// Titles `conversation` from its first message in the background (on the node's task tracker, so
/// that shutdown lets it finish).
pub(crate) fn spawn(
    lifecycle: &Arc<Lifecycle>,
    store: Arc<dyn ConversationStore>,
    conversation: ConversationId,
    first_message: String,
) {
    let node = Arc::clone(lifecycle);
    lifecycle.tasks().spawn(async move {
        let Some(title) = title(node.calls(), &conversation, &first_message).await else {
            return;
        };
        match store.set_title_if_none(&conversation, &title).await {
            Ok(written) => {
                tracing::debug!(conversation_id = %conversation, written, "conversation titled");
            }
            Err(error) => {
                tracing::warn!(conversation_id = %conversation, reason = %error, "cannot write the conversation's title");
            }
        }
    });
}

/// The title of a conversation starting with `message`: the owner's model's, else a plain one; `None`
/// for a message without words.
async fn title(calls: &OwnerCalls, conversation: &ConversationId, message: &str) -> Option<String> {
    if !calls.has_model() {
        return plain(message);
    }
    match calls
        .request_llm_completion(conversation, prompt(message))
        .await
    {
        Ok(answer) => cleaned(&answer).or_else(|| plain(message)),
        Err(error) => {
            tracing::info!(conversation_id = %conversation, reason = %error, "no title from the model: the message's first words instead");
            plain(message)
        }
    }
}

fn prompt(message: &str) -> Vec<ChatMessage> {
    let excerpt: String = message.chars().take(PROMPT_EXCERPT_CHARS).collect();
    let asked = format!(
        "Write a title of at most {TITLE_WORDS} words for a conversation starting with: {excerpt}\n\
         Answer with the title alone."
    );
    vec![ChatMessage::new(ChatRole::User, &asked)]
}

/// The model's answer as a title: its first line, trimmed, without the quotes around it, cut to
/// [`Conversation::MAX_TITLE_CHARS`].
fn cleaned(answer: &str) -> Option<String> {
    let line = answer
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())?;
    let title = line.trim_matches(QUOTES).trim();
    (!title.is_empty()).then(|| title.chars().take(Conversation::MAX_TITLE_CHARS).collect())
}

/// The message's first words.
fn plain(message: &str) -> Option<String> {
    let words: Vec<&str> = message.split_whitespace().take(TITLE_WORDS).collect();
    (!words.is_empty()).then(|| {
        words
            .join(" ")
            .chars()
            .take(Conversation::MAX_TITLE_CHARS)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_answer_is_trimmed_unquoted_and_cut() {
        assert_eq!(
            cleaned("  \"Fix the flaky login test\"  \nbecause...").as_deref(),
            Some("Fix the flaky login test")
        );
        assert_eq!(
            cleaned("\n“Refactor the parser”").as_deref(),
            Some("Refactor the parser")
        );
        assert_eq!(cleaned(" \"\" \n"), None);
        let long = cleaned(&"word ".repeat(100)).unwrap();
        assert_eq!(long.chars().count(), Conversation::MAX_TITLE_CHARS);
    }

    #[test]
    fn a_plain_title_is_the_messages_first_words() {
        assert_eq!(
            plain("Please fix the failing workflows on PR #2: test failed at step 3").as_deref(),
            Some("Please fix the failing workflows on PR #2:")
        );
        assert_eq!(plain("  hi\n there ").as_deref(), Some("hi there"));
        assert_eq!(plain(" \n "), None);
        let one_long_word = plain(&"é".repeat(500)).unwrap();
        assert_eq!(one_long_word.chars().count(), Conversation::MAX_TITLE_CHARS);
    }

    #[test]
    fn the_prompt_quotes_the_start_of_a_long_message() {
        let asked = &prompt(&"x".repeat(5_000))[0];
        assert_eq!(asked.role, ChatRole::User);
        assert!(
            asked
                .content
                .starts_with("Write a title of at most 8 words")
        );
        assert!(asked.content.len() < PROMPT_EXCERPT_CHARS + 200);
    }
}
