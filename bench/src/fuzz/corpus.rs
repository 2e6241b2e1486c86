//! The fuzzer's seeds: the signed sample deliveries in `events/webhook/` (API Gateway requests) and the
//! real GitHub payloads in `events/github-webhooks/` (the event is the file name's first word).

use std::path::Path;

use e2e::webhook_sender::{Delivery, read_delivery};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/webhook");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/github-webhooks");

/// One seed: an event name and the payload GitHub would send with it.
#[derive(Debug, Clone)]
pub(super) struct Seed {
    pub event: String,
    pub body: Vec<u8>,
}

/// Every seed, samples first; panics with the path when a file cannot be read.
pub(super) fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for (dir, from_sample) in [(SAMPLES, true), (FIXTURES, false)] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let event = (!from_sample).then(|| event_of_fixture(&path));
            let Delivery { event, body, .. } = read_delivery(&file, event.as_deref())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seeds.push(Seed { event, body });
        }
    }
    seeds
}

/// `workflow_run.completed.json` -> `workflow_run`.
fn event_of_fixture(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.split('.').next().unwrap_or_default().to_owned()
}
