//! The conversation store on one DynamoDB table: an item per conversation, key `pk` = conversation id.
//!
//! Attributes: `user_id`, `title`?, `created_at`, `last_updated_at`, `status`, `agent_state`,
//! `trigger_id`?, `repository`?, `epoch`? (N: the highest owner epoch that wrote the loop's state),
//! and for the indexes `created_key` = `<created_at>#<id>`, `created_partition` = `CONVERSATION`, and
//! `running_partition` = `RUNNING` only while the status is running.
//!
//! Creation puts the whole item; every later write is an `UpdateItem` of its own fields: the loop's
//! state (an owner's conditional on `epoch`), or the title (conditional on there being none).
//!
//! Global secondary indexes (all attributes projected, so a listing needs no further reads):
//! - `by_user` (`user_id`, `created_key`): a user's conversations, read newest first.
//! - `by_creation` (`created_partition`, `created_key`): every conversation in `(created_at, id)`
//!   order, for the sync's "created after the watermark" reads. One constant partition keeps that order
//!   a single query; conversations are created far below the ~1,000 writes/s one index partition takes.
//! - `running` (`running_partition`, `pk`): sparse, only the running conversations, in id order, for
//!   the cleanup's "recorded as running" reads (stopped ones leave it as the attribute goes).
//!
//! `created_at` is a fixed-width UTC string and `#` sorts before every id character, so the string
//! order of `created_key` is exactly the `(created_at, id)` order of [`CreatedCursor`].

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::item::{
    Fields, Item, PK, enum_name, is_conditional_failure, number, sortable_time, string, unavailable,
};
use super::{IndexSpec, Projected, TableSpec, query_up_to};
use crate::domain::{Conversation, ConversationId, ConversationStatus, CreatedCursor, UserId};
use crate::ports::{ConversationStore, LoopState, OwnerWrite, StoreError, WriteOutcome};

const USER_ID: &str = "user_id";
const CREATED_KEY: &str = "created_key";
const CREATED_PARTITION: &str = "created_partition";
const CONVERSATION: &str = "CONVERSATION";
const RUNNING_PARTITION: &str = "running_partition";
const RUNNING: &str = "RUNNING";
const EPOCH: &str = "epoch";

const USER_INDEX: &str = "by_user";
const CREATION_INDEX: &str = "by_creation";
const RUNNING_INDEX: &str = "running";

pub(super) fn table_spec(name: &str) -> TableSpec<'_> {
    const INDEXES: &[IndexSpec] = &[
        IndexSpec {
            name: USER_INDEX,
            partition: USER_ID,
            sort: CREATED_KEY,
            projected: Projected::All,
        },
        IndexSpec {
            name: CREATION_INDEX,
            partition: CREATED_PARTITION,
            sort: CREATED_KEY,
            projected: Projected::All,
        },
        IndexSpec {
            name: RUNNING_INDEX,
            partition: RUNNING_PARTITION,
            sort: PK,
            projected: Projected::All,
        },
    ];
    TableSpec {
        name,
        partition: PK,
        sort: None,
        numeric_sort: false,
        indexes: INDEXES,
        ttl: None,
    }
}

/// The position of a cursor in the `created_key` order.
fn created_key(cursor: &CreatedCursor) -> String {
    format!("{}#{}", sortable_time(cursor.created_at), cursor.id)
}

/// The DynamoDB adapter of [`ConversationStore`]; cheap to clone.
#[derive(Clone)]
pub struct ConversationTable {
    client: Client,
    table: String,
}

/// How a write of the loop's state went.
enum StateWrite {
    Written,
    /// Its condition failed: the item as it was, if there is one.
    Refused(Option<Item>),
}

impl ConversationTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A `Query` of one of the table's indexes, to which the caller adds the key condition.
    fn query_index(&self, index: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
    }

    /// Writes the loop's state, under the owner's `epoch` when given: `SET` what it holds, `REMOVE`
    /// what it does not (the remote agent, the running index's key once stopped); nothing else of the
    /// item changes.
    async fn write_state(
        &self,
        id: &ConversationId,
        epoch: Option<u64>,
        state: &LoopState,
    ) -> Result<StateWrite, StoreError> {
        let mut set = vec![
            "#status = :status".to_owned(),
            "agent_state = :agent_state".to_owned(),
            "last_updated_at = :updated".to_owned(),
        ];
        let mut remove = Vec::new();
        let mut condition = "attribute_exists(#pk)".to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, string(id.as_str()))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", string(enum_name(&state.status)?))
            .expression_attribute_values(":agent_state", string(enum_name(&state.agent_state)?))
            .expression_attribute_values(":updated", string(sortable_time(state.last_updated_at)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match json_attribute(state.remote_agent.as_ref())? {
            Some(remote) => {
                set.push("remote_agent = :remote".to_owned());
                update = update.expression_attribute_values(":remote", string(remote));
            }
            None => remove.push("remote_agent".to_owned()),
        }
        if state.status == ConversationStatus::Running {
            set.push(format!("{RUNNING_PARTITION} = :running"));
            update = update.expression_attribute_values(":running", string(RUNNING));
        } else {
            remove.push(RUNNING_PARTITION.to_owned());
        }
        if let Some(epoch) = epoch {
            set.push(format!("{EPOCH} = :epoch"));
            condition.push_str(&format!(
                " AND (attribute_not_exists({EPOCH}) OR {EPOCH} <= :epoch)"
            ));
            update = update.expression_attribute_values(":epoch", number(epoch));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let written = update
            .update_expression(expression)
            .condition_expression(condition)
            .send()
            .await;
        match written {
            Ok(_) => Ok(StateWrite::Written),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(StateWrite::Refused(failed.item.clone()))
                }
                _ => Err(unavailable("UpdateItem", &error)),
            },
        }
    }
}

fn encode(conversation: &Conversation) -> Result<Item, StoreError> {
    let optional = [
        ("title", conversation.title.clone()),
        (
            "trigger_id",
            conversation.trigger_id.as_ref().map(|t| t.to_string()),
        ),
        ("repository", conversation.repository.clone()),
        ("checkout", json_attribute(conversation.checkout.as_ref())?),
        ("model", json_attribute(conversation.model.as_ref())?),
        (
            "remote_agent",
            json_attribute(conversation.remote_agent.as_ref())?,
        ),
        (
            "confirmation_mode",
            conversation.confirmation_mode.then(|| "true".to_owned()),
        ),
        (
            RUNNING_PARTITION,
            (conversation.status == ConversationStatus::Running).then(|| RUNNING.to_owned()),
        ),
    ];
    let item: Item = [
        (PK, string(conversation.id.as_str())),
        (USER_ID, string(conversation.user_id.as_str())),
        ("created_at", string(sortable_time(conversation.created_at))),
        (
            "last_updated_at",
            string(sortable_time(conversation.last_updated_at)),
        ),
        ("status", string(enum_name(&conversation.status)?)),
        ("agent_state", string(enum_name(&conversation.agent_state)?)),
        (
            CREATED_KEY,
            string(created_key(&CreatedCursor::of(conversation))),
        ),
        (CREATED_PARTITION, string(CONVERSATION)),
    ]
    .into_iter()
    .chain(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, AttributeValue::S(v)))),
    )
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    Ok(item)
}

/// The first `limit` conversations a query finds, decoded.
async fn decode_up_to(
    query: QueryFluentBuilder,
    limit: usize,
) -> Result<Vec<Conversation>, StoreError> {
    query_up_to(query, limit)
        .await?
        .iter()
        .map(decode)
        .collect()
}

fn decode(stored: &Item) -> Result<Conversation, StoreError> {
    let fields = Fields::of("conversation", stored);
    Ok(Conversation {
        id: fields.parsed(PK)?,
        user_id: fields.parsed(USER_ID)?,
        title: fields.opt_string("title")?.map(str::to_owned),
        created_at: fields.time("created_at")?,
        last_updated_at: fields.time("last_updated_at")?,
        status: fields.parsed("status")?,
        agent_state: fields.parsed("agent_state")?,
        trigger_id: fields.opt_parsed("trigger_id")?,
        repository: fields.opt_string("repository")?.map(str::to_owned),
        checkout: from_json_attribute(&fields, "checkout")?,
        confirmation_mode: fields.opt_string("confirmation_mode")? == Some("true"),
        model: from_json_attribute(&fields, "model")?,
        remote_agent: from_json_attribute(&fields, "remote_agent")?,
    })
}

/// A structured field as one JSON string attribute (read whole, never queried).
fn json_attribute<T: serde::Serialize>(value: Option<&T>) -> Result<Option<String>, StoreError> {
    value
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json_attribute<T: serde::de::DeserializeOwned>(
    fields: &Fields,
    name: &str,
) -> Result<Option<T>, StoreError> {
    fields
        .opt_string(name)?
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("conversation {name}: {e}")))
}

#[async_trait]
impl ConversationStore for ConversationTable {
    async fn create_conversation(
        &self,
        conversation: &Conversation,
    ) -> Result<WriteOutcome, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(conversation)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match written {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(error) if is_conditional_failure(&error) => Ok(WriteOutcome::Conflict),
            Err(error) => Err(unavailable("PutItem", &error)),
        }
    }

    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        output.item.as_ref().map(decode).transpose()
    }

    async fn update_owned(
        &self,
        id: &ConversationId,
        epoch: u64,
        state: &LoopState,
    ) -> Result<OwnerWrite, StoreError> {
        Ok(match self.write_state(id, Some(epoch), state).await? {
            StateWrite::Written => OwnerWrite::Written,
            StateWrite::Refused(None) => OwnerWrite::Missing,
            StateWrite::Refused(Some(stored)) => OwnerWrite::Fenced {
                epoch: Fields::of("conversation", &stored)
                    .opt_number(EPOCH)?
                    .unwrap_or_default(),
            },
        })
    }

    /// A conversation that does not exist is not created (the update is a no-op, as an SQL `UPDATE` of
    /// no row).
    async fn update_conversation(&self, conversation: &Conversation) -> Result<(), StoreError> {
        self.write_state(&conversation.id, None, &LoopState::of(conversation))
            .await
            .map(drop)
    }

    async fn set_title_if_none(
        &self,
        id: &ConversationId,
        title: &str,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, string(id.as_str()))
            .update_expression("SET #title = :title")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#title)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#title", "title")
            .expression_attribute_values(":title", string(title))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_failure(&error) => Ok(false),
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    async fn list_user_conversations(
        &self,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        let query = self
            .query_index(USER_INDEX)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_values(":user", string(user_id.as_str()))
            .scan_index_forward(false);
        decode_up_to(query, limit).await
    }

    async fn list_created_after(
        &self,
        after: &CreatedCursor,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        let query = self
            .query_index(CREATION_INDEX)
            .key_condition_expression("#partition = :partition AND #created > :after")
            .expression_attribute_names("#partition", CREATED_PARTITION)
            .expression_attribute_names("#created", CREATED_KEY)
            .expression_attribute_values(":partition", string(CONVERSATION))
            .expression_attribute_values(":after", string(created_key(after)))
            .scan_index_forward(true);
        decode_up_to(query, limit).await
    }

    async fn list_running(
        &self,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        let query = self
            .query_index(RUNNING_INDEX)
            .expression_attribute_names("#partition", RUNNING_PARTITION)
            .expression_attribute_values(":partition", string(RUNNING))
            .scan_index_forward(true);
        let query = match after {
            Some(after) => query
                .key_condition_expression("#partition = :partition AND #pk > :after")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":after", string(after.as_str())),
            None => query.key_condition_expression("#partition = :partition"),
        };
        decode_up_to(query, limit).await
    }
}
