//! The proactive store contract against the embedded SQLite adapter, plus what is particular to it:
//! data survives reopening the file.

use std::sync::Arc;

use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::domain::{RepoId, Repository, UserId};
use shared::ports::ProactiveStore;

async fn fresh_store() -> Arc<dyn ProactiveStore> {
    Arc::new(
        EmbeddedProactiveStore::open(EmbeddedDb::in_memory().unwrap())
            .await
            .unwrap(),
    )
}

e2e::proactive_store_contract!(fresh_store);

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let repository = Repository {
        id: RepoId::from_github(7),
        owner: "octo-org".into(),
        name: "octo-repo".into(),
        installation_id: Some(1),
        account: "octo-org".into(),
        user_id: UserId::from_github(1),
        proactive_enabled: true,
    };
    {
        let store = EmbeddedProactiveStore::open(EmbeddedDb::open(dir.path()).unwrap())
            .await
            .unwrap();
        store.put_repository(&repository).await.unwrap();
    }
    let reopened = EmbeddedProactiveStore::open(EmbeddedDb::open(dir.path()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        reopened.get_repository(&repository.id).await.unwrap(),
        Some(repository)
    );
}
