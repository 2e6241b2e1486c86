//! The DynamoDB sync state: one item of the proactive table, `pk = SYNC#<name>`, `sk = STATE`, holding the
//! watermark and the run lease. The watermark is also kept as one sortable string
//! (`<created_at, fixed width>#<id>`) so that "only forward" is a condition DynamoDB checks itself.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::item::{PK, SK};
use crate::domain::{ConversationId, CreatedCursor};
use crate::ports::{Advance, StoreError, SyncStateStore};

const SORT_KEY: &str = "STATE";

#[derive(Clone)]
pub struct SyncStateItem {
    client: Client,
    table: String,
    pk: String,
}

impl SyncStateItem {
    /// The state of the sync called `name` (e.g. `commonroom`) in `table` (the proactive table).
    pub fn new(client: Client, table: &str, name: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            pk: format!("SYNC#{name}"),
        }
    }

    fn key(&self) -> [(String, AttributeValue); 2] {
        [
            (PK.into(), AttributeValue::S(self.pk.clone())),
            (SK.into(), AttributeValue::S(SORT_KEY.into())),
        ]
    }

    /// An `UpdateItem` of this state's item, to which the caller adds the expressions.
    fn update_state(&self) -> UpdateItemFluentBuilder {
        let [pk, sk] = self.key();
        self.client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
    }

    async fn lease_owner(&self) -> Result<Option<String>, StoreError> {
        let item = self.item().await?;
        Ok(item.and_then(|item| string(&item, "lease_owner")))
    }

    async fn item(
        &self,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let [pk, sk] = self.key();
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item)
    }
}

/// `2024-05-01T12:00:00.000000000Z#<id>`: fixed width, so string order is `(created_at, id)` order.
fn sortable(cursor: &CreatedCursor) -> String {
    format!(
        "{}#{}",
        cursor.created_at.format("%Y-%m-%dT%H:%M:%S%.9fZ"),
        cursor.id
    )
}

fn string(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn unavailable<E: ProvideErrorMetadata, R>(error: SdkError<E, R>) -> StoreError {
    let detail = error
        .meta()
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| error.to_string());
    StoreError::Unavailable(format!("DynamoDB: {detail}"))
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp_millis().to_string())
}

#[async_trait]
impl SyncStateStore for SyncStateItem {
    async fn watermark(&self) -> Result<Option<CreatedCursor>, StoreError> {
        let Some(item) = self.item().await? else {
            return Ok(None);
        };
        let (Some(at), Some(id)) = (
            string(&item, "watermark_created_at"),
            string(&item, "watermark_id"),
        ) else {
            return Ok(None);
        };
        let created_at = DateTime::parse_from_rfc3339(&at)
            .map_err(|e| StoreError::Corrupt(format!("watermark time: {e}")))?
            .with_timezone(&Utc);
        let id = ConversationId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(CreatedCursor { created_at, id }))
    }

    async fn acquire_run_lease(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Utc::now();
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let result = self
            .update_state()
            .update_expression("SET lease_owner = :owner, lease_expires_at = :expires")
            .condition_expression(
                "attribute_not_exists(lease_owner) OR lease_owner = :owner OR lease_expires_at <= :now",
            )
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":expires", millis(expires))
            .expression_attribute_values(":now", millis(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn advance_watermark(
        &self,
        owner: &str,
        to: &CreatedCursor,
    ) -> Result<Advance, StoreError> {
        let result = self
            .update_state()
            .update_expression(
                "SET watermark = :watermark, watermark_created_at = :at, watermark_id = :id",
            )
            .condition_expression(
                "lease_owner = :owner AND (attribute_not_exists(watermark) OR watermark < :watermark)",
            )
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":watermark", AttributeValue::S(sortable(to)))
            .expression_attribute_values(":at", AttributeValue::S(to.created_at.to_rfc3339()))
            .expression_attribute_values(":id", AttributeValue::S(to.id.as_str().to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Advance::Moved),
            // Which half of the condition failed: the lease is read back (only the holder writes it).
            Err(error) if is_condition_failure(&error) => {
                if self.lease_owner().await?.as_deref() == Some(owner) {
                    Ok(Advance::AlreadyPast)
                } else {
                    Ok(Advance::LeaseLost)
                }
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn release_run_lease(&self, owner: &str) -> Result<(), StoreError> {
        let result = self
            .update_state()
            .update_expression("REMOVE lease_owner, lease_expires_at")
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_watermarks_order_like_cursors() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let cursor = |t: &str, id: &str| CreatedCursor {
            created_at: at(t),
            id: ConversationId::parse(id).unwrap(),
        };
        let mut cursors = vec![
            cursor("2024-05-01T12:00:00.5Z", "a"),
            cursor("2024-05-01T12:00:00Z", "b"),
            cursor("2024-05-01T12:00:00Z", "a"),
            cursor("2024-05-01T12:00:00Z", "a-1"),
            cursor("2023-12-31T23:59:59.999999999Z", "z"),
        ];
        let mut by_string = cursors.clone();
        cursors.sort();
        by_string.sort_by_key(sortable);
        assert_eq!(cursors, by_string);
    }
}
