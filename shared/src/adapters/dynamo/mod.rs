//! DynamoDB adapters of the store ports, and the creation of their tables.
//!
//! - `proactive`: [`ProactiveTable`], the proactive store on one single-table-design table.
//! - `conversations`: [`ConversationTable`], conversation metadata.
//! - `events`: [`EventTable`], conversation events and their fenced heads.
//! - `sync_state`: [`SyncStateItem`], a sync's watermark and run lease, one item of the proactive table.
//! - [`create_tables`]: creates the tables with their indexes and TTL (tests, `make cluster`, local
//!   runs; production tables come from `template.yaml`, with the same key schema).
//!
//! Every key attribute is a string but the events table's sort key (the event id, a number); every timestamp in a key is a fixed-width UTC string (see
//! `item::sortable_time`), so that string order is time order. The key schemas are documented on each
//! adapter and in the README's DynamoDB section.

mod conversations;
mod events;
mod item;
mod proactive;
mod sync_state;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};

pub use conversations::ConversationTable;
pub use events::EventTable;
pub use proactive::ProactiveTable;
pub use sync_state::SyncStateItem;

use crate::config::TableNames;
use crate::ports::StoreError;
use item::{Item, unavailable, unbuilt};

/// How long `create_tables` waits for a new table to become active.
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(120);

/// Creates the proactive, conversations and events tables if they do not exist yet (idempotent):
/// on-demand billing, their global secondary indexes, TTL on `expires_at` where the table has one.
pub async fn create_tables(client: &Client, tables: &TableNames) -> Result<(), StoreError> {
    create_table(client, &proactive::table_spec(&tables.proactive)).await?;
    create_table(client, &conversations::table_spec(&tables.conversations)).await?;
    create_table(client, &events::table_spec(&tables.events)).await
}

/// A table's shape: keys, global secondary indexes and TTL attribute. Key attributes are strings, but
/// a sort key marked `numeric_sort`.
struct TableSpec<'a> {
    name: &'a str,
    partition: &'static str,
    sort: Option<&'static str>,
    numeric_sort: bool,
    indexes: &'static [IndexSpec],
    ttl: Option<&'static str>,
}

struct IndexSpec {
    name: &'static str,
    partition: &'static str,
    sort: &'static str,
    projected: Projected,
}

/// The attributes an index copies besides the keys.
enum Projected {
    All,
    KeysOnly,
    Include(&'static [&'static str]),
}

async fn create_table(client: &Client, spec: &TableSpec<'_>) -> Result<(), StoreError> {
    let mut request = client
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest);
    let mut key_attributes = vec![spec.partition];
    request = request.key_schema(key(spec.partition, KeyType::Hash)?);
    if let Some(sort) = spec.sort {
        key_attributes.push(sort);
        request = request.key_schema(key(sort, KeyType::Range)?);
    }
    for index in spec.indexes {
        key_attributes.extend([index.partition, index.sort]);
        request = request.global_secondary_indexes(global_index(index)?);
    }
    key_attributes.sort_unstable();
    key_attributes.dedup();
    for name in key_attributes {
        let numeric = spec.numeric_sort && spec.sort == Some(name);
        let definition = AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(if numeric {
                ScalarAttributeType::N
            } else {
                ScalarAttributeType::S
            })
            .build()
            .map_err(unbuilt)?;
        request = request.attribute_definitions(definition);
    }
    match request.send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(error) => return Err(unavailable("CreateTable", &error)),
    }
    client
        .wait_until_table_exists()
        .table_name(spec.name)
        .wait(TABLE_ACTIVE_WAIT)
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("table {} did not become active", spec.name))
        })?;
    match spec.ttl {
        Some(attribute) => enable_ttl(client, spec.name, attribute).await,
        None => Ok(()),
    }
}

async fn enable_ttl(client: &Client, table: &str, attribute: &str) -> Result<(), StoreError> {
    let current = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| unavailable("DescribeTimeToLive", &e))?;
    let status = current
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    // Enabling twice is refused by DynamoDB, so an enabled (or enabling) TTL is left alone.
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let specification = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(unbuilt)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|e| unavailable("UpdateTimeToLive", &e))?;
    Ok(())
}

/// Up to `limit` items of `query`, following pages (a page ends at `limit` items or at 1 MB).
async fn query_up_to(query: QueryFluentBuilder, limit: usize) -> Result<Vec<Item>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let page_size = i32::try_from(limit).unwrap_or(i32::MAX);
    let mut items = query.into_paginator().page_size(page_size).items().send();
    let mut found = Vec::new();
    while found.len() < limit {
        match items.next().await {
            Some(item) => found.push(item.map_err(|e| unavailable("Query", &e))?),
            None => break,
        }
    }
    Ok(found)
}

fn key(attribute: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(kind)
        .build()
        .map_err(unbuilt)
}

fn global_index(index: &IndexSpec) -> Result<GlobalSecondaryIndex, StoreError> {
    let projection = match index.projected {
        Projected::All => Projection::builder().projection_type(ProjectionType::All),
        Projected::KeysOnly => Projection::builder().projection_type(ProjectionType::KeysOnly),
        Projected::Include(attributes) => attributes.iter().fold(
            Projection::builder().projection_type(ProjectionType::Include),
            |projection, attribute| projection.non_key_attributes(*attribute),
        ),
    };
    GlobalSecondaryIndex::builder()
        .index_name(index.name)
        .key_schema(key(index.partition, KeyType::Hash)?)
        .key_schema(key(index.sort, KeyType::Range)?)
        .projection(projection.build())
        .build()
        .map_err(unbuilt)
}
