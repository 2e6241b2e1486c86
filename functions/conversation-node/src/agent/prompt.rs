//! What the model is sent for a conversation's turn: the system prompt, then as much of the
//! conversation as fits the model's input budget, newest first kept. A long conversation then keeps
//! working (the oldest turns leave the request, not the store) instead of failing on the model's context.

use shared::domain::{ChatMessage, ChatRole};

/// The system prompt when `LLM_SYSTEM_PROMPT` is not set.
pub(crate) const DEFAULT_SYSTEM_PROMPT: &str = "You are a software engineering agent working on a \
user's repository. When a pull request's checks fail, find the cause from the failure the user gives \
you, propose the smallest change that fixes it, and say how to verify it. Be concise and precise.";

/// Tokens counted per message for its role and separators (OpenAI's chat format spends 3-4).
const MESSAGE_OVERHEAD_TOKENS: usize = 4;

/// A conservative token estimate: one token per 3 bytes (English and code average nearer 4), so that
/// the budget holds without the model's tokenizer.
fn estimated_tokens(message: &ChatMessage) -> usize {
    message.content.len().div_ceil(3) + MESSAGE_OVERHEAD_TOKENS
}

/// The request for a turn: `system`, then the newest messages of `history` that fit in
/// `max_input_tokens` with it, lent rather than copied (a long conversation's history is large). The
/// last message is always sent (the turn answers it), and the kept part starts with a user message,
/// as chat models expect after the system prompt.
pub(crate) fn turn_request<'a>(
    system: &'a ChatMessage,
    history: &'a [ChatMessage],
    max_input_tokens: usize,
) -> Vec<&'a ChatMessage> {
    let mut budget = max_input_tokens.saturating_sub(estimated_tokens(system));
    let mut first_kept = history.len();
    for (index, message) in history.iter().enumerate().rev() {
        let cost = estimated_tokens(message);
        if cost > budget && first_kept < history.len() {
            break;
        }
        budget = budget.saturating_sub(cost);
        first_kept = index;
    }
    let kept = &history[first_kept..];
    let from_user = kept
        .iter()
        .position(|message| message.role == ChatRole::User)
        .unwrap_or(kept.len().saturating_sub(1));
    std::iter::once(system).chain(&kept[from_user..]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(count: usize, size: usize) -> Vec<ChatMessage> {
        (0..count)
            .flat_map(|n| {
                [
                    ChatMessage::new(ChatRole::User, &format!("{n}{}", "u".repeat(size))),
                    ChatMessage::new(ChatRole::Assistant, &format!("{n}{}", "a".repeat(size))),
                ]
            })
            .collect()
    }

    #[test]
    fn a_short_conversation_is_sent_whole_after_the_system_prompt() {
        let mut history = turns(2, 10);
        history.push(ChatMessage::new(ChatRole::User, "now"));
        let system = ChatMessage::new(ChatRole::System, "be brief");
        let request = turn_request(&system, &history, 10_000);
        assert_eq!(request[0], &system);
        assert!(request[1..].iter().copied().eq(&history));
    }

    #[test]
    fn the_oldest_turns_leave_first_and_the_rest_starts_with_the_user() {
        let mut history = turns(50, 300);
        history.push(ChatMessage::new(ChatRole::User, "the latest question"));
        let system = ChatMessage::new(ChatRole::System, "be brief");
        let request = turn_request(&system, &history, 1_000);
        let total: usize = request
            .iter()
            .map(|message| estimated_tokens(message))
            .sum();
        assert!(total <= 1_000, "{total} tokens sent");
        assert_eq!(request[0].role, ChatRole::System);
        assert_eq!(request[1].role, ChatRole::User);
        assert_eq!(request.last().copied(), history.last());
        assert!(request.len() < history.len() / 2, "{} kept", request.len());
        // What is kept is the newest part, in order.
        let kept = &request[1..];
        assert!(
            kept.iter()
                .copied()
                .eq(&history[history.len() - kept.len()..])
        );
    }

    #[test]
    fn the_message_being_answered_is_sent_even_over_the_budget() {
        let history = vec![
            ChatMessage::new(ChatRole::User, "old"),
            ChatMessage::new(ChatRole::Assistant, "old answer"),
            ChatMessage::new(ChatRole::User, &"x".repeat(9_000)),
        ];
        let system = ChatMessage::new(ChatRole::System, "be brief");
        let request = turn_request(&system, &history, 100);
        assert_eq!(request.len(), 2);
        assert_eq!(request[1], &history[2]);
    }
}
