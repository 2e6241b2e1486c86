//! The Common Room payloads the sync sends, in the shapes of its v1 API: a user (`ApiUser`) and a
//! `started_session` activity (`ApiActivity`) whose id, `conversation_<id>`, makes a resend an upsert.

use serde::Serialize;

use shared::domain::Conversation;
use shared::keycloak::KeycloakUser;

pub(crate) const STARTED_SESSION: &str = "started_session";

/// `{"type":"handle","value":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handle {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

/// `{"type":"text","value":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextContent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

impl TextContent {
    fn text(value: String) -> Self {
        Self {
            kind: "text",
            value,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommonRoomUser {
    pub id: String,
    pub email: String,
    pub username: String,
    pub github: Handle,
}

impl CommonRoomUser {
    /// The user as Common Room knows it; `None` for a user without e-mail (Common Room keys people by it).
    pub fn from_keycloak(user: &KeycloakUser) -> Option<Self> {
        Some(Self {
            id: user.id.clone(),
            email: user.email.clone()?,
            username: user.username.clone(),
            // The linked GitHub login, else the Keycloak username (GitHub sign-ins share it).
            github: Handle {
                kind: "handle",
                value: user
                    .github_login
                    .clone()
                    .unwrap_or_else(|| user.username.clone()),
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub id: String,
    pub activity_type: &'static str,
    pub user: CommonRoomUser,
    pub activity_title: TextContent,
    pub content: TextContent,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    pub url: String,
}

impl Activity {
    /// The `started_session` activity of `conversation`, linking to it under `public_url`.
    pub fn started_session(
        conversation: &Conversation,
        user: CommonRoomUser,
        public_url: &str,
    ) -> Self {
        let title = conversation
            .title
            .as_deref()
            .filter(|t| !t.trim().is_empty());
        Self {
            id: format!("conversation_{}", conversation.id),
            activity_type: STARTED_SESSION,
            user,
            activity_title: TextContent::text(title.unwrap_or("New Conversation").to_owned()),
            content: TextContent::text(format!(
                "Started a new conversation: {}",
                title.unwrap_or("Untitled")
            )),
            timestamp: conversation
                .created_at
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            url: format!(
                "{}/conversations/{}",
                public_url.trim_end_matches('/'),
                conversation.id
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use shared::domain::{AgentState, ConversationId, ConversationStatus, UserId};

    fn user(github: Option<&str>) -> KeycloakUser {
        KeycloakUser {
            id: "4f1c".into(),
            username: "jdoe".into(),
            email: Some("jdoe@example.com".into()),
            github_login: github.map(str::to_owned),
        }
    }

    #[test]
    fn the_activity_has_the_shape_common_room_expects() {
        let created_at = DateTime::parse_from_rfc3339("2024-05-01T12:34:56.789Z")
            .unwrap()
            .with_timezone(&Utc);
        let conversation = Conversation {
            id: ConversationId::parse("abc123").unwrap(),
            user_id: UserId::parse("4f1c").unwrap(),
            title: None,
            created_at,
            last_updated_at: created_at,
            status: ConversationStatus::Running,
            agent_state: AgentState::Running,
            trigger_id: None,
            repository: None,
            checkout: None,
            confirmation_mode: false,
            model: None,
            remote_agent: None,
        };
        let person = CommonRoomUser::from_keycloak(&user(Some("jdoe-gh"))).unwrap();
        let activity = Activity::started_session(&conversation, person, "https://app.example.com/");
        assert_eq!(
            serde_json::to_value(&activity).unwrap(),
            json!({
                "id": "conversation_abc123",
                "activityType": "started_session",
                "user": {
                    "id": "4f1c", "email": "jdoe@example.com", "username": "jdoe",
                    "github": {"type": "handle", "value": "jdoe-gh"}
                },
                "activityTitle": {"type": "text", "value": "New Conversation"},
                "content": {"type": "text", "value": "Started a new conversation: Untitled"},
                "timestamp": "2024-05-01T12:34:56Z",
                "url": "https://app.example.com/conversations/abc123"
            })
        );
    }

    #[test]
    fn the_handle_falls_back_to_the_username_and_no_email_means_no_user() {
        let person = CommonRoomUser::from_keycloak(&user(None)).unwrap();
        assert_eq!(person.github.value, "jdoe");
        let mut anonymous = user(None);
        anonymous.email = None;
        assert_eq!(CommonRoomUser::from_keycloak(&anonymous), None);
    }
}
