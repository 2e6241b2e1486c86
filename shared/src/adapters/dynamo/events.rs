//! The DynamoDB event store (`EVENTS_TABLE`).
//!
//! Key schema: partition key `pk` (S) = conversation id, sort key `sk` (N) = event id. Each event is one
//! item with its JSON in `event`. The conversation's head is the item at `sk = -1` (`next_id`, `epoch`,
//! `inbox_cursor`), so a page query (`sk >= start_id`) never sees it. A fence is a conditional update of
//! the head; an append is one `TransactWriteItems`: the head's update, conditional on `next_id` and
//! `epoch`, and a conditional put of each event.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem, Update};

use super::TableSpec;
use super::item::{
    Fields, Item, PK, SK, is_conditional_failure, number, string, unavailable, unbuilt,
};
use crate::domain::{ConversationEvent, ConversationId, InboxId};
use crate::ports::StoreError;
use crate::ports::event_store::{
    AppendOutcome, EventBatch, EventHead, EventPage, EventStore, FenceOutcome,
};

/// The sort key of a conversation's head item.
const HEAD_SK: i64 = -1;
const NEXT_ID: &str = "next_id";
const EPOCH: &str = "epoch";
const INBOX_CURSOR: &str = "inbox_cursor";
const EVENT: &str = "event";

pub(super) fn table_spec(name: &str) -> TableSpec<'_> {
    TableSpec {
        name,
        partition: PK,
        sort: Some(SK),
        numeric_sort: true,
        indexes: &[],
        ttl: None,
    }
}

/// The DynamoDB adapter of [`EventStore`]; cheap to clone.
#[derive(Clone)]
pub struct EventTable {
    client: Client,
    table: String,
}

impl EventTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn head_key(conversation: &ConversationId) -> Item {
        Item::from([
            (PK.to_owned(), string(conversation.as_str())),
            (SK.to_owned(), number(HEAD_SK)),
        ])
    }
}

fn head_of(item: Option<&Item>) -> Result<EventHead, StoreError> {
    let Some(item) = item else {
        return Ok(EventHead::default());
    };
    let fields = Fields::of("event head", item);
    Ok(EventHead {
        next_id: fields.opt_number(NEXT_ID)?.unwrap_or(0),
        epoch: fields.opt_number(EPOCH)?.unwrap_or(0),
        inbox_cursor: fields
            .opt_string(INBOX_CURSOR)?
            .map(|raw| InboxId(raw.to_owned())),
    })
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
            .expression_attribute_values(":epoch", number(epoch))
            .expression_attribute_values(":zero", number(0))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match answer {
            Ok(answer) => Ok(FenceOutcome::Fenced(head_of(answer.attributes())?)),
            Err(error) if is_conditional_failure(&error) => {
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
            .expression_attribute_values(":expected", number(first_id))
            .expression_attribute_values(":epoch", number(owner_epoch))
            .expression_attribute_values(":next", number(events.next_id()));
        update = match consumed {
            Some(cursor) => update
                .update_expression("SET next_id = :next, epoch = :epoch, inbox_cursor = :cursor")
                .expression_attribute_values(":cursor", string(cursor.as_str())),
            None => update.update_expression("SET next_id = :next, epoch = :epoch"),
        };
        let update = update.build().map_err(unbuilt)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        for event in events.events() {
            let put = Put::builder()
                .table_name(&self.table)
                .item(PK, string(conversation.as_str()))
                .item(SK, number(event.id))
                .item(EVENT, super::item::json(event)?)
                .condition_expression("attribute_not_exists(sk)")
                .build()
                .map_err(unbuilt)?;
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
                        "dynamodb TransactWriteItems: transaction conflict".into(),
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
                .expression_attribute_values(":pk", string(conversation.as_str()))
                .expression_attribute_values(":start", number(start_id))
                .expression_attribute_values(":last", number(last))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| unavailable("Query", &e))?;
            for item in answer.items() {
                events.push(Fields::of("event", item).json::<ConversationEvent>(EVENT)?);
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
