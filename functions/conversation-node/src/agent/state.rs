//! The agent loop's state machine: which state an input leads to from each state, `None` when the input
//! does not apply (it is then ignored). Every change is recorded as an `agent_state_changed` event.

use shared::domain::AgentState;

/// What happens to a conversation's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// The loop (re)starts on a node.
    Start,
    /// The loop is ready for the user.
    Ready,
    UserMessage,
    /// The agent answered.
    Answered,
    /// The model kept answering 429 after the retries.
    ModelRateLimited,
    /// The model stayed unavailable after the retries (or refused the call).
    ModelFailed,
    Pause,
    Resume,
    Stop,
    /// A runtime that works on its own (an agent-server) reports its agent in this state.
    Runtime(AgentState),
    /// The user's answer to the action the agent asked to confirm: accepted or rejected.
    Confirmation(bool),
}

pub(crate) fn next(from: AgentState, input: Input) -> Option<AgentState> {
    use AgentState::*;
    let to = match (from, input) {
        // A (re)start is always recorded, whatever state the conversation was left in.
        (_, Input::Start) => return Some(Loading),
        (Loading, Input::Ready) => AwaitingUserInput,
        (Stopped, Input::UserMessage) => return None,
        (_, Input::UserMessage) => Running,
        (Running, Input::Answered) => AwaitingUserInput,
        (Running, Input::ModelRateLimited) => RateLimited,
        (Running, Input::ModelFailed) => Error,
        (Running | AwaitingUserInput | Finished | Error | RateLimited, Input::Pause) => Paused,
        (Paused, Input::Resume) => AwaitingUserInput,
        (Stopped, Input::Stop) => return None,
        (_, Input::Stop) => Stopped,
        // The agent goes on either way: with the action, or told it was rejected.
        (AwaitingUserConfirmation, Input::Confirmation(_)) => Running,
        (_, Input::Confirmation(_)) => return None,
        (Stopped, Input::Runtime(_)) => return None,
        (_, Input::Runtime(to)) => to,
        _ => return None,
    };
    (to != from).then_some(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentState::*;

    #[test]
    fn a_turn_goes_running_then_back_to_awaiting_input() {
        assert_eq!(next(Loading, Input::Ready), Some(AwaitingUserInput));
        assert_eq!(next(AwaitingUserInput, Input::UserMessage), Some(Running));
        assert_eq!(next(Running, Input::Answered), Some(AwaitingUserInput));
    }

    #[test]
    fn model_failures_end_the_turn_in_their_own_states_and_a_message_retries() {
        assert_eq!(next(Running, Input::ModelFailed), Some(Error));
        assert_eq!(next(Running, Input::ModelRateLimited), Some(RateLimited));
        assert_eq!(next(Error, Input::UserMessage), Some(Running));
        assert_eq!(next(RateLimited, Input::UserMessage), Some(Running));
        assert_eq!(next(AwaitingUserInput, Input::ModelFailed), None);
    }

    #[test]
    fn pause_resume_and_stop() {
        assert_eq!(next(AwaitingUserInput, Input::Pause), Some(Paused));
        assert_eq!(next(Paused, Input::Pause), None);
        assert_eq!(next(Paused, Input::Resume), Some(AwaitingUserInput));
        assert_eq!(next(AwaitingUserInput, Input::Resume), None);
        assert_eq!(next(Paused, Input::UserMessage), Some(Running));
        assert_eq!(next(Running, Input::Stop), Some(Stopped));
        assert_eq!(next(Stopped, Input::Stop), None);
        assert_eq!(next(Stopped, Input::UserMessage), None);
        assert_eq!(next(Stopped, Input::Start), Some(Loading));
        assert_eq!(next(Loading, Input::Start), Some(Loading));
    }

    #[test]
    fn a_runtime_reports_its_agents_state_until_the_conversation_stops() {
        assert_eq!(next(Running, Input::Runtime(Finished)), Some(Finished));
        assert_eq!(next(Finished, Input::Runtime(Finished)), None);
        assert_eq!(next(Running, Input::Runtime(Error)), Some(Error));
        assert_eq!(next(Stopped, Input::Runtime(Running)), None);
        assert_eq!(next(Finished, Input::UserMessage), Some(Running));
    }

    #[test]
    fn a_confirmation_answers_only_a_pending_action() {
        assert_eq!(
            next(AwaitingUserConfirmation, Input::Confirmation(false)),
            Some(Running)
        );
        assert_eq!(
            next(AwaitingUserConfirmation, Input::Confirmation(true)),
            Some(Running)
        );
        assert_eq!(next(Running, Input::Confirmation(true)), None);
        assert_eq!(next(AwaitingUserInput, Input::Confirmation(false)), None);
    }
}
