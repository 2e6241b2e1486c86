//! The users of one run: looked up in Keycloak a page at a time (only those not seen yet in the run,
//! concurrently up to the batch size), and registered in Common Room at most once per run however many
//! conversations they started.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::OnceCell;

use super::{SyncError, Tally};
use crate::commonroom::{CommonRoomClient, CommonRoomUser};
use shared::domain::{Conversation, UserId};
use shared::keycloak::{KeycloakClient, KeycloakError, KeycloakUser};
use shared::retry::{Retryable, Verdict};

/// What the run knows of one user.
pub(super) enum RunUser {
    /// Keycloak has no such user.
    Missing,
    /// Known, but without an e-mail address: Common Room cannot take them.
    WithoutEmail,
    Known {
        person: CommonRoomUser,
        /// Set once the user's registration is done: `Err(status)` when Common Room refused it.
        registered: OnceCell<Result<(), u16>>,
    },
}

impl RunUser {
    fn classify(user: Option<KeycloakUser>, tally: &Tally) -> Self {
        match user.as_ref().map(CommonRoomUser::from_keycloak) {
            None => {
                tally.missing_users.fetch_add(1, Ordering::Relaxed);
                Self::Missing
            }
            Some(None) => {
                tally.users_without_email.fetch_add(1, Ordering::Relaxed);
                Self::WithoutEmail
            }
            Some(Some(person)) => Self::Known {
                person,
                registered: OnceCell::new(),
            },
        }
    }

    /// Registers the user unless this run already did; `Ok(Err(status))` when Common Room refused it
    /// for good. `first` tells whether this call made the registration.
    pub(super) async fn register(
        &self,
        client: &CommonRoomClient,
    ) -> Result<(Result<(), u16>, bool), SyncError> {
        let RunUser::Known { person, registered } = self else {
            return Ok((Ok(()), false));
        };
        let mut first = false;
        let outcome = registered
            .get_or_try_init(|| async {
                first = true;
                match client.upsert_user(person).await {
                    Ok(()) => Ok(Ok(())),
                    Err(error) if error.verdict() == Verdict::Permanent => {
                        Ok(Err(error.status().unwrap_or_default()))
                    }
                    Err(error) => Err(SyncError::CommonRoom(error)),
                }
            })
            .await?;
        Ok((*outcome, first))
    }
}

#[derive(Default)]
pub(super) struct RunUsers {
    known: HashMap<UserId, Arc<RunUser>>,
}

impl RunUsers {
    /// Pairs each conversation of `page` with its user, looking up the users this run has not seen.
    pub(super) async fn resolve(
        &mut self,
        page: Vec<Conversation>,
        keycloak: &KeycloakClient,
        concurrency: usize,
        tally: &Tally,
    ) -> Result<Vec<(Conversation, Arc<RunUser>)>, KeycloakError> {
        let unseen: HashSet<String> = page
            .iter()
            .filter(|c| !self.known.contains_key(&c.user_id))
            .map(|c| c.user_id.as_str().to_owned())
            .collect();
        let mut found = keycloak.users(unseen, concurrency).await?;
        Ok(page
            .into_iter()
            .map(|conversation| {
                let user = self
                    .known
                    .entry(conversation.user_id.clone())
                    .or_insert_with(|| {
                        let user = found.remove(conversation.user_id.as_str()).flatten();
                        Arc::new(RunUser::classify(user, tally))
                    })
                    .clone();
                (conversation, user)
            })
            .collect())
    }
}
