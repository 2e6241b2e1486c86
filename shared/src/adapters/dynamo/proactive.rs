//! The proactive store on one DynamoDB table (single-table design, string keys `pk` and `sk`).
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | repository | `REPO#<repo id>` | `REPO` | `id`, `owner`, `name`, `installation_id`?, `account`, `user_id`, `proactive_enabled`, `lookup_name` |
//! | repository name | `REPO_NAME#<owner/name, lower case>` | `REPO_NAME` | `repo_id` |
//! | PR comment | `COMMENT#<repo id>#<pr>` | `COMMENT` | `claimed_until` (epoch ms), `comment_id`? |
//! | user settings | `USER#<user id>` | `SETTINGS` | `settings` (JSON `{proactive_conversations?}`) |
//! | processed delivery | `DELIVERY#<delivery id>` | `DELIVERY` | `expires_at` |
//! | workflow-run group | `GROUP#<repo id>#<pr>#<head sha>` | `GROUP` | `repo_id`, `pr_number`, `head_sha`, `runs` (JSON), `version`, `state`, `created_at`, `last_updated_at`, `expires_at`, `group_kind` = `GROUP`, `owner`?, `head_branch`?; while collecting: `collecting_kind` = `COLLECTING`; while a trigger is unpublished: `outbox` (JSON), `outbox_pk` = `OUTBOX`, `outbox_sk` = `<decided_at>#<group key>` |
//!
//! Global secondary indexes, both sparse (only items carrying their keys appear):
//! - `groups_by_update` (`group_kind`, `last_updated_at`), keys only: retention finds old groups by query.
//! - `outbox_by_decision` (`outbox_pk`, `outbox_sk`), with `outbox`: pending triggers, oldest first.
//! - `collecting_by_update` (`collecting_kind`, `last_updated_at`), whole items: groups still
//!   collecting, for the reconciliation.
//!
//! TTL attribute: `expires_at` (epoch seconds) on deliveries and groups. TTL deletes lag by up to two
//! days, so reads check `expires_at` themselves and retention deletes groups explicitly.
//! Every timestamp string is fixed-width UTC (string order = time order). Both indexes have one constant
//! partition: a webhook's write rate is far below what one index partition takes (about 1,000 writes/s).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, Select, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::item::{
    Fields, Item, PK, SK, enum_name, is_conditional_failure, json, number, set_expression,
    sortable_time, string, unavailable, unbuilt,
};
use super::{IndexSpec, Projected, TableSpec, query_up_to};
use crate::domain::{
    DeliveryId, GroupKey, GroupState, OutboxEntry, RepoId, Repository, UserId, UserSettings,
    WorkflowRunGroup,
};
use crate::ports::{CommentClaim, Expected, ProactiveStore, StoreError, WriteOutcome};

const REPOSITORY: &str = "REPO";
const REPOSITORY_NAME: &str = "REPO_NAME";
const DELIVERY: &str = "DELIVERY";
const USER: &str = "USER";
const COMMENT: &str = "COMMENT";
const CLAIMED_UNTIL: &str = "claimed_until";
const COMMENT_ID: &str = "comment_id";
const SETTINGS: &str = "SETTINGS";
const GROUP: &str = "GROUP";
const OUTBOX: &str = "OUTBOX";

const EXPIRES_AT: &str = "expires_at";
const SETTINGS_ATTRIBUTE: &str = "settings";
const REPO_ID: &str = "repo_id";
const VERSION: &str = "version";
const LAST_UPDATED_AT: &str = "last_updated_at";
const GROUP_KIND: &str = "group_kind";
const COLLECTING_KIND: &str = "collecting_kind";
const COLLECTING: &str = "COLLECTING";
const OUTBOX_EVENT: &str = "outbox";
const OUTBOX_PK: &str = "outbox_pk";
const OUTBOX_SK: &str = "outbox_sk";

const RETENTION_INDEX: &str = "groups_by_update";
const OUTBOX_INDEX: &str = "outbox_by_decision";
const COLLECTING_INDEX: &str = "collecting_by_update";

/// How long a group lives by TTL when no other value is given: the default retention window. TTL is a
/// backstop behind `delete_groups_updated_before`; set it to the deployment's retention.
pub(super) const DEFAULT_GROUP_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Groups deleted concurrently by retention.
const DELETE_CONCURRENCY: usize = 25;

pub(super) fn table_spec(name: &str) -> TableSpec<'_> {
    const INDEXES: &[IndexSpec] = &[
        IndexSpec {
            name: RETENTION_INDEX,
            partition: GROUP_KIND,
            sort: LAST_UPDATED_AT,
            projected: Projected::KeysOnly,
        },
        IndexSpec {
            name: OUTBOX_INDEX,
            partition: OUTBOX_PK,
            sort: OUTBOX_SK,
            projected: Projected::Include(&[OUTBOX_EVENT]),
        },
        IndexSpec {
            name: COLLECTING_INDEX,
            partition: COLLECTING_KIND,
            sort: LAST_UPDATED_AT,
            projected: Projected::All,
        },
    ];
    TableSpec {
        name,
        partition: PK,
        sort: Some(SK),
        numeric_sort: false,
        indexes: INDEXES,
        ttl: Some(EXPIRES_AT),
    }
}

/// The DynamoDB adapter of [`ProactiveStore`]; cheap to clone.
#[derive(Clone)]
pub struct ProactiveTable {
    client: Client,
    table: String,
    group_ttl: Duration,
}

impl ProactiveTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            group_ttl: DEFAULT_GROUP_TTL,
        }
    }

    /// Sets how long after its last update a group expires by TTL.
    pub fn with_group_ttl(mut self, ttl: Duration) -> Self {
        self.group_ttl = ttl;
        self
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", &e))?;
        Ok(output.item)
    }

    /// Writes `item` whole, unconditionally.
    async fn put_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", &e))?;
        Ok(())
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(unbuilt)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(unbuilt)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Deletes the name item of `lookup` only while it still names `id`: another repository may have
    /// taken the name since (renamed into it, or registered after this one was deleted on GitHub).
    fn release_name(&self, lookup: &str, id: &RepoId) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(name_key(lookup)))
            .condition_expression("attribute_not_exists(#pk) OR #repo = :repo")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#repo", REPO_ID)
            .expression_attribute_values(":repo", string(id.as_str()))
            .build()
            .map_err(unbuilt)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Runs a registry transaction. Its only conditional writes are name releases: a release whose
    /// name has been taken by another repository is dropped and the rest run again.
    async fn write_registry(&self, mut writes: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        loop {
            let error = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let taken: Vec<usize> = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                    .cancellation_reasons()
                    .iter()
                    .enumerate()
                    .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
                    .map(|(i, _)| i)
                    .collect(),
                _ => Vec::new(),
            };
            if taken.is_empty() {
                return Err(unavailable("TransactWriteItems", &error));
            }
            writes = writes
                .into_iter()
                .enumerate()
                .filter_map(|(i, write)| (!taken.contains(&i)).then_some(write))
                .collect();
        }
    }

    /// The retention index's groups last updated before `cutoff` (a sortable time).
    /// A query of one of the table's index partitions (`partition` = `value`), oldest first, whose
    /// sort key `#sort` (= `sort`) meets `condition`; the caller binds the condition's values.
    fn index_query(
        &self,
        index: &str,
        (partition, value): (&str, &str),
        sort: &str,
        condition: &str,
    ) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(format!("#partition = :partition AND {condition}"))
            .expression_attribute_names("#partition", partition)
            .expression_attribute_names("#sort", sort)
            .expression_attribute_values(":partition", string(value))
            .scan_index_forward(true)
    }

    fn stale_groups(&self, cutoff: &str) -> QueryFluentBuilder {
        self.index_query(
            RETENTION_INDEX,
            (GROUP_KIND, GROUP),
            LAST_UPDATED_AT,
            "#sort < :cutoff",
        )
        .expression_attribute_values(":cutoff", string(cutoff))
    }

    async fn delete_group_if_stale(
        &self,
        index_item: Item,
        cutoff: &str,
    ) -> Result<bool, StoreError> {
        let key: Item = index_item
            .into_iter()
            .filter(|(name, _)| name == PK || name == SK)
            .collect();
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            // The group may have been updated since the index was read: then it stays.
            .condition_expression("#updated < :cutoff")
            .expression_attribute_names("#updated", LAST_UPDATED_AT)
            .expression_attribute_values(":cutoff", string(cutoff))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(error) if is_conditional_failure(&error) => Ok(false),
            Err(error) => Err(unavailable("DeleteItem", &error)),
        }
    }

    fn group_attributes(
        &self,
        group: &WorkflowRunGroup,
        outbox: Option<&OutboxEntry>,
    ) -> Result<Vec<(&'static str, AttributeValue)>, StoreError> {
        let ttl = i64::try_from(self.group_ttl.as_secs()).unwrap_or(i64::MAX);
        let mut attributes = vec![
            (REPO_ID, string(group.key.repo_id.as_str())),
            ("pr_number", number(group.key.pr_number)),
            ("head_sha", string(group.key.head_sha.as_str())),
            ("runs", json(&group.runs)?),
            (VERSION, number(group.version)),
            ("state", string(group.state.as_str())),
            ("created_at", string(sortable_time(group.created_at))),
            (
                LAST_UPDATED_AT,
                string(sortable_time(group.last_updated_at)),
            ),
            (
                EXPIRES_AT,
                number(group.last_updated_at.timestamp().saturating_add(ttl)),
            ),
            (GROUP_KIND, string(GROUP)),
        ];
        if group.state == GroupState::Collecting {
            attributes.push((COLLECTING_KIND, string(COLLECTING)));
        }
        if let Some(owner) = &group.owner {
            attributes.push(("owner", string(owner.as_str())));
        }
        if let Some(branch) = &group.head_branch {
            attributes.push(("head_branch", string(branch.as_str())));
        }
        if let Some(told) = group.told {
            attributes.push(("told", string(enum_name(&told)?)));
            attributes.push(("sequence", number(group.sequence)));
        }
        if let Some(entry) = outbox {
            attributes.extend([
                (OUTBOX_EVENT, json(entry)?),
                (OUTBOX_PK, string(OUTBOX)),
                (OUTBOX_SK, string(outbox_sort_key(entry))),
            ]);
        }
        Ok(attributes)
    }
}

fn item<'a>(attributes: impl IntoIterator<Item = (&'a str, AttributeValue)>) -> Item {
    attributes
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn key(pk: String, sk: &str) -> Item {
    item([(PK, string(pk)), (SK, string(sk))])
}

fn repository_key(id: &RepoId) -> Item {
    key(format!("{REPOSITORY}#{}", id.as_str()), REPOSITORY)
}

fn name_key(lookup: &str) -> Item {
    key(format!("{REPOSITORY_NAME}#{lookup}"), REPOSITORY_NAME)
}

/// `<decided_at>#<group key>`: the outbox index's order, and which entry a clear may remove.
fn outbox_sort_key(entry: &OutboxEntry) -> String {
    format!("{}#{}", sortable_time(entry.event.decided_at), entry.key())
}

fn comment_key(repo: &RepoId, pr: u64) -> Item {
    key(format!("{COMMENT}#{}#{pr}", repo.as_str()), COMMENT)
}

fn settings_key(user: &UserId) -> Item {
    key(format!("{USER}#{}", user.as_str()), SETTINGS)
}

fn delivery_key(id: &DeliveryId) -> Item {
    key(format!("{DELIVERY}#{}", id.as_str()), DELIVERY)
}

fn group_key(key_of: &GroupKey) -> Item {
    key(format!("{GROUP}#{key_of}"), GROUP)
}

fn repository_item(repository: &Repository, lookup: &str) -> Item {
    let mut stored = repository_key(&repository.id);
    stored.extend(item([
        ("id", string(repository.id.as_str())),
        ("owner", string(&repository.owner)),
        ("name", string(&repository.name)),
        ("account", string(&repository.account)),
        ("user_id", string(repository.user_id.as_str())),
        (
            "proactive_enabled",
            AttributeValue::Bool(repository.proactive_enabled),
        ),
        ("lookup_name", string(lookup)),
    ]));
    if let Some(installation) = repository.installation_id {
        stored.insert("installation_id".into(), number(installation));
    }
    stored
}

fn decode_repository(stored: &Item) -> Result<Repository, StoreError> {
    let fields = Fields::of("repository", stored);
    Ok(Repository {
        id: fields.parsed("id")?,
        owner: fields.string("owner")?.to_owned(),
        name: fields.string("name")?.to_owned(),
        installation_id: fields.opt_number("installation_id")?,
        account: fields.string("account")?.to_owned(),
        user_id: fields.parsed("user_id")?,
        proactive_enabled: fields.boolean("proactive_enabled")?,
    })
}

fn decode_group(stored: &Item) -> Result<WorkflowRunGroup, StoreError> {
    let fields = Fields::of("group", stored);
    Ok(WorkflowRunGroup {
        key: GroupKey {
            repo_id: fields.parsed(REPO_ID)?,
            pr_number: fields.number("pr_number")?,
            head_sha: fields.parsed("head_sha")?,
        },
        runs: fields.json("runs")?,
        version: fields.number(VERSION)?,
        state: fields.parsed("state")?,
        created_at: fields.time("created_at")?,
        last_updated_at: fields.time(LAST_UPDATED_AT)?,
        owner: fields.opt_parsed("owner")?,
        head_branch: fields.opt_string("head_branch")?.map(str::to_owned),
        told: fields.opt_parsed("told")?,
        sequence: fields.opt_number("sequence")?.unwrap_or(0),
    })
}

#[async_trait]
impl ProactiveStore for ProactiveTable {
    /// One transaction writes the repository and its name item (and releases a previous name).
    async fn put_repository(&self, repository: &Repository) -> Result<(), StoreError> {
        let lookup = Repository::lookup_name(&repository.owner, &repository.name);
        let previous = self.get_repository(&repository.id).await?;
        let mut name_item = name_key(&lookup);
        name_item.insert(REPO_ID.into(), string(repository.id.as_str()));
        let mut writes = vec![
            self.put(repository_item(repository, &lookup))?,
            self.put(name_item)?,
        ];
        if let Some(previous) = previous {
            let old = Repository::lookup_name(&previous.owner, &previous.name);
            if old != lookup {
                writes.push(self.release_name(&old, &repository.id)?);
            }
        }
        self.write_registry(writes).await
    }

    async fn remove_repository(&self, id: &RepoId) -> Result<(), StoreError> {
        let Some(previous) = self.get_repository(id).await? else {
            return Ok(());
        };
        let lookup = Repository::lookup_name(&previous.owner, &previous.name);
        let writes = vec![
            self.delete(repository_key(id))?,
            self.release_name(&lookup, id)?,
        ];
        self.write_registry(writes).await
    }

    async fn get_repository(&self, id: &RepoId) -> Result<Option<Repository>, StoreError> {
        self.get(repository_key(id))
            .await?
            .as_ref()
            .map(decode_repository)
            .transpose()
    }

    async fn get_repo_id(&self, owner: &str, name: &str) -> Result<Option<RepoId>, StoreError> {
        let lookup = Repository::lookup_name(owner, name);
        match self.get(name_key(&lookup)).await? {
            Some(stored) => Fields::of("repository name", &stored)
                .parsed(REPO_ID)
                .map(Some),
            None => Ok(None),
        }
    }

    async fn get_user_settings(&self, user: &UserId) -> Result<UserSettings, StoreError> {
        match self.get(settings_key(user)).await? {
            Some(stored) => Fields::of("user settings", &stored).json(SETTINGS_ATTRIBUTE),
            None => Ok(UserSettings::default()),
        }
    }

    async fn put_user_settings(
        &self,
        user: &UserId,
        settings: &UserSettings,
    ) -> Result<(), StoreError> {
        let mut stored = settings_key(user);
        stored.insert(SETTINGS_ATTRIBUTE.into(), json(settings)?);
        self.put_item(stored).await
    }

    async fn claim_pr_comment(
        &self,
        repo: &RepoId,
        pr: u64,
        until: DateTime<Utc>,
    ) -> Result<CommentClaim, StoreError> {
        let mut claim = comment_key(repo, pr);
        claim.insert(CLAIMED_UNTIL.into(), number(until.timestamp_millis()));
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(claim))
            .condition_expression(
                "attribute_not_exists(#pk) OR (attribute_not_exists(#id) AND #until < :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#id", COMMENT_ID)
            .expression_attribute_names("#until", CLAIMED_UNTIL)
            .expression_attribute_values(":now", number(Utc::now().timestamp_millis()))
            .send()
            .await;
        match written {
            Ok(_) => return Ok(CommentClaim::Won),
            Err(error) if is_conditional_failure(&error) => {}
            Err(error) => return Err(unavailable("PutItem", &error)),
        }
        let recorded = match self.get(comment_key(repo, pr)).await? {
            Some(stored) => Fields::of("PR comment", &stored).opt_number(COMMENT_ID)?,
            None => None,
        };
        Ok(recorded.map_or(CommentClaim::Taken, CommentClaim::Recorded))
    }

    async fn release_pr_comment(&self, repo: &RepoId, pr: u64) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(comment_key(repo, pr)))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", COMMENT_ID)
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            // A comment is recorded: nothing to give up.
            Err(error) if is_conditional_failure(&error) => Ok(()),
            Err(error) => Err(unavailable("DeleteItem", &error)),
        }
    }

    async fn record_pr_comment(
        &self,
        repo: &RepoId,
        pr: u64,
        comment_id: u64,
    ) -> Result<(), StoreError> {
        let mut recorded = comment_key(repo, pr);
        recorded.insert(CLAIMED_UNTIL.into(), number(0));
        recorded.insert(COMMENT_ID.into(), number(comment_id));
        self.put_item(recorded).await
    }

    async fn is_delivery_processed(&self, id: &DeliveryId) -> Result<bool, StoreError> {
        let Some(stored) = self.get(delivery_key(id)).await? else {
            return Ok(false);
        };
        // TTL deletes lag: an expired item may still be there.
        let expires_at: i64 = Fields::of("delivery", &stored).number(EXPIRES_AT)?;
        Ok(expires_at > Utc::now().timestamp())
    }

    async fn mark_delivery_processed(
        &self,
        id: &DeliveryId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut stored = delivery_key(id);
        stored.insert(EXPIRES_AT.into(), number(expires_at.timestamp()));
        self.put_item(stored).await
    }

    async fn get_group(&self, key: &GroupKey) -> Result<Option<WorkflowRunGroup>, StoreError> {
        self.get(group_key(key))
            .await?
            .as_ref()
            .map(decode_group)
            .transpose()
    }

    /// One conditional UpdateItem. It sets every attribute of the group (and the outbox entry when
    /// given) but never removes one, so that a later write cannot drop a pending outbox entry: only
    /// `clear_outbox` does.
    async fn save_group(
        &self,
        group: &WorkflowRunGroup,
        expected: Expected,
        outbox: Option<&OutboxEntry>,
    ) -> Result<WriteOutcome, StoreError> {
        let (mut update, mut names, mut values) =
            set_expression(self.group_attributes(group, outbox)?);
        // A decided group leaves the reconciliation's index.
        if group.state == GroupState::Triggered {
            update.push_str(" REMOVE #collecting");
            names.insert("#collecting".into(), COLLECTING_KIND.into());
        }
        let condition = match expected {
            Expected::Absent => {
                names.insert("#pk".into(), PK.into());
                "attribute_not_exists(#pk)"
            }
            Expected::Version(read) => {
                names.insert("#version".into(), VERSION.into());
                values.insert(":expected".into(), number(read));
                "#version = :expected"
            }
        };
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(group_key(&group.key)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match written {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(error) if is_conditional_failure(&error) => Ok(WriteOutcome::Conflict),
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }

    /// Queries the retention index page by page and deletes each group with a condition that it is
    /// still older than `cutoff`, so the count is exact even while groups are being written.
    async fn delete_groups_updated_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = sortable_time(cutoff);
        let mut stale = self.stale_groups(&cutoff).into_paginator().items().send();
        let mut deleted = 0;
        loop {
            let mut batch = Vec::with_capacity(DELETE_CONCURRENCY);
            while batch.len() < DELETE_CONCURRENCY {
                match stale.next().await {
                    Some(found) => batch.push(found.map_err(|e| unavailable("Query", &e))?),
                    None => break,
                }
            }
            if batch.is_empty() {
                return Ok(deleted);
            }
            let outcomes = futures::future::join_all(
                batch
                    .into_iter()
                    .map(|found| self.delete_group_if_stale(found, &cutoff)),
            )
            .await;
            for outcome in outcomes {
                deleted += u64::from(outcome?);
            }
        }
    }

    /// Counts on the retention index page by page (`Select::Count`): no item is read or written.
    async fn count_groups_updated_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut pages = self
            .stale_groups(&sortable_time(cutoff))
            .select(Select::Count)
            .into_paginator()
            .send();
        let mut counted = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable("Query", &e))?;
            counted += u64::try_from(page.count()).unwrap_or(0);
        }
        Ok(counted)
    }

    async fn pending_outbox(
        &self,
        decided_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        // `<decided_at>#<key>` < `<decided_before>` exactly when decided_at < decided_before.
        let query = self
            .index_query(
                OUTBOX_INDEX,
                (OUTBOX_PK, OUTBOX),
                OUTBOX_SK,
                "#sort < :before",
            )
            .expression_attribute_values(":before", string(sortable_time(decided_before)));
        query_up_to(query, limit)
            .await?
            .iter()
            .map(|found| Fields::of("outbox", found).json(OUTBOX_EVENT))
            .collect()
    }

    async fn collecting_groups_updated_between(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkflowRunGroup>, StoreError> {
        let query = self
            .index_query(
                COLLECTING_INDEX,
                (COLLECTING_KIND, COLLECTING),
                LAST_UPDATED_AT,
                "#sort BETWEEN :after AND :before",
            )
            .expression_attribute_values(":after", string(sortable_time(after)))
            .expression_attribute_values(":before", string(sortable_time(before)));
        query_up_to(query, limit)
            .await?
            .iter()
            .map(decode_group)
            .collect()
    }

    async fn clear_outbox(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let cleared = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(group_key(&entry.key())))
            .update_expression("REMOVE #event, #outbox, #decided")
            // Only this entry: a later follow-up in its place stays. (And without `attribute_exists`
            // implied, an update of a deleted group would create a stub item.)
            .condition_expression("#decided = :decided")
            .set_expression_attribute_names(Some(HashMap::from([
                ("#event".to_owned(), OUTBOX_EVENT.to_owned()),
                ("#outbox".to_owned(), OUTBOX_PK.to_owned()),
                ("#decided".to_owned(), OUTBOX_SK.to_owned()),
            ])))
            .expression_attribute_values(":decided", string(outbox_sort_key(entry)))
            .send()
            .await;
        match cleared {
            Ok(_) => Ok(()),
            Err(error) if is_conditional_failure(&error) => Ok(()),
            Err(error) => Err(unavailable("UpdateItem", &error)),
        }
    }
}
