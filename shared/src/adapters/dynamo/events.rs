//! The DynamoDB event store (`EVENTS_TABLE`).
//!
//! Key schema: partition key `pk` (S) = conversation id, sort key `sk` (N) = event id. Each event is one
//! item with its JSON in `event`. The conversation's head is the item at `sk = -1` (`next_id`, `epoch`,
//! `inbox_cursor`), so a page query (`sk >= start_id`) never sees it. A fence is a conditional update of
//! the head; an append is one `TransactWriteItems`: the head's update, conditional on `next_id` and
//! `epoch`, and a conditional put of each event.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

use crate::domain::{ConversationEvent, ConversationId, InboxId};
use crate::ports::StoreError;
use crate::ports::event_store::{
    AppendOutcome, EventBatch, EventHead, EventPage, EventStore, FenceOutcome,
};

const PK: &str = "pk";
const SK: &str = "sk";
/// The sort key of a conversation's head item.
const HEAD_SK: &str = "-1";

#[derive(Clone)]
pub struct EventTable {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

impl EventTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn head_key(conversation: &ConversationId) -> Item {
        HashMap::from([
            (
                PK.to_owned(),
                AttributeValue::S(conversation.as_str().to_owned()),
            ),
            (SK.to_owned(), AttributeValue::N(HEAD_SK.to_owned())),
        ])
    }
}

fn unavailable<E: ProvideErrorMetadata, R>(operation: &str, error: &SdkError<E, R>) -> StoreError {
    let cause = match error {
        SdkError::ServiceError(_) => error.code().unwrap_or("service error"),
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "network failure",
        _ => "request failed",
    };
    StoreError::Unavailable(format!("DynamoDB {operation}: {cause}"))
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        None => Ok(0),
        Some(AttributeValue::N(raw)) => raw
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("event head: `{name}` is not a number"))),
        Some(_) => Err(StoreError::Corrupt(format!(
            "event head: `{name}` is not a number"
        ))),
    }
}

fn head_of(item: Option<&Item>) -> Result<EventHead, StoreError> {
    let Some(item) = item else {
        return Ok(EventHead::default());
    };
    let inbox_cursor = match item.get("inbox_cursor") {
        Some(AttributeValue::S(raw)) => Some(InboxId(raw.clone())),
        None | Some(AttributeValue::Null(_)) => None,
        Some(_) => {
            return Err(StoreError::Corrupt(
                "event head: `inbox_cursor` is not a string".into(),
            ));
        }
    };
    Ok(EventHead {
        next_id: number(item, "next_id")?,
        epoch: number(item, "epoch")?,
        inbox_cursor,
    })
}

fn event_of(item: &Item) -> Result<ConversationEvent, StoreError> {
    match item.get("event") {
        Some(AttributeValue::S(raw)) => {
            serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("event item: {e}")))
        }
        _ => Err(StoreError::Corrupt(
            "event item: attribute `event` is missing".into(),
        )),
    }
}

#[async_trait]
impl EventStore for EventTable {
    async fn head(&self, conversation: &ConversationId) -> Result<EventHead, StoreError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::head_key(conversation)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        head_of(answer.item())
    }

    async fn fence(
        &self,
        conversation: &ConversationId,
        epoch: u64,
    ) -> Result<FenceOutcome, StoreError> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::head_key(conversation)))
            .update_expression("SET epoch = :epoch, next_id = if_not_exists(next_id, :zero)")
            .condition_expression("attribute_not_exists(epoch) OR epoch <= :epoch")
            .expression_attribute_values(":epoch", AttributeValue::N(epoch.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match answer {
            Ok(answer) => Ok(FenceOutcome::Fenced(head_of(answer.attributes())?)),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let head = self.head(conversation).await?;
                Ok(FenceOutcome::Superseded { epoch: head.epoch })
            }
            Err(e) => Err(unavailable("UpdateItem", &e)),
        }
    }

    async fn append(
        &self,
        conversation: &ConversationId,
        owner_epoch: u64,
        events: &EventBatch,
        consumed: Option<&InboxId>,
    ) -> Result<AppendOutcome, StoreError> {
        let first_id = events.first_id();
        // A conversation without a head item is at next id 0, epoch 0.
        let condition = if first_id == 0 {
            "(attribute_not_exists(next_id) OR next_id = :expected) AND (attribute_not_exists(epoch) OR epoch <= :epoch)"
        } else {
            "next_id = :expected AND epoch <= :epoch"
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::head_key(conversation)))
            .condition_expression(condition)
            .expression_attribute_values(":expected", AttributeValue::N(first_id.to_string()))
            .expression_attribute_values(":epoch", AttributeValue::N(owner_epoch.to_string()))
            .expression_attribute_values(":next", AttributeValue::N(events.next_id().to_string()));
        update = match consumed {
            Some(cursor) => update
                .update_expression("SET next_id = :next, epoch = :epoch, inbox_cursor = :cursor")
                .expression_attribute_values(":cursor", AttributeValue::S(cursor.0.clone())),
            None => update.update_expression("SET next_id = :next, epoch = :epoch"),
        };
        let update = update
            .build()
            .map_err(|e| StoreError::Unavailable(format!("DynamoDB update not built: {e}")))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        for event in events.events() {
            let body = serde_json::to_string(event)
                .map_err(|e| StoreError::Corrupt(format!("cannot encode event: {e}")))?;
            let put = Put::builder()
                .table_name(&self.table)
                .item(PK, AttributeValue::S(conversation.as_str().to_owned()))
                .item(SK, AttributeValue::N(event.id.to_string()))
                .item("event", AttributeValue::S(body))
                .condition_expression("attribute_not_exists(sk)")
                .build()
                .map_err(|e| StoreError::Unavailable(format!("DynamoDB put not built: {e}")))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let answer = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(AppendOutcome::Appended),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                // Which condition failed decides the answer; the head tells.
                let head = self.head(conversation).await?;
                if head.epoch > owner_epoch {
                    Ok(AppendOutcome::Fenced { epoch: head.epoch })
                } else if head.next_id != first_id {
                    Ok(AppendOutcome::IdConflict {
                        next_id: head.next_id,
                    })
                } else {
                    // Cancelled for another reason (a concurrent transaction on the same items).
                    Err(StoreError::Unavailable(
                        "DynamoDB TransactWriteItems: transaction conflict".into(),
                    ))
                }
            }
            Err(e) => Err(unavailable("TransactWriteItems", &e)),
        }
    }

    async fn page(
        &self,
        conversation: &ConversationId,
        start_id: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let limit = limit.max(1);
        // Ids are consecutive, so the key range names exactly the page and one event beyond it.
        let last = start_id.saturating_add(limit as u64);
        let mut events = Vec::with_capacity(limit + 1);
        let mut start_key = None;
        loop {
            let answer = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :start AND :last")
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(conversation.as_str().to_owned()),
                )
                .expression_attribute_values(":start", AttributeValue::N(start_id.to_string()))
                .expression_attribute_values(":last", AttributeValue::N(last.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| unavailable("Query", &e))?;
            for item in answer.items() {
                events.push(event_of(item)?);
            }
            // A page stops at 1 MB; large events can need more than one.
            match answer.last_evaluated_key() {
                Some(key) if events.len() <= limit => start_key = Some(key.clone()),
                _ => break,
            }
        }
        let has_more = events.len() > limit;
        events.truncate(limit);
        Ok(EventPage { events, has_more })
    }
}
