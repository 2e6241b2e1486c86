//! Mutations of one webhook delivery: of the body's bytes (bit flips, interesting bytes, truncation,
//! deleted, repeated and inserted ranges, splices with other seeds, whole-body replacements), of its JSON
//! (type swaps, extreme numbers, huge strings, deep nesting, removed, unknown and repeated keys), and of
//! its headers (event names, delivery ids, signatures correct over the mutated body, wrong or missing).

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use super::corpus::Seed;

/// How the `X-Hub-Signature-256` header is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signature {
    /// Correct over the body as sent.
    Valid,
    Missing,
    /// Correct over the body before it was mutated.
    OverOriginal,
    /// A malformed or altered header (wrong prefix, bad hex, case, spaces, truncated).
    Garbled,
}

/// One fuzz input: the headers' raw values (`None`: absent) and the body.
#[derive(Debug, Clone)]
pub(super) struct Input {
    pub event: Option<Vec<u8>>,
    pub delivery: Option<Vec<u8>>,
    pub signature: Signature,
    pub original: Vec<u8>,
    pub body: Vec<u8>,
}

const EVENTS: &[&str] = &[
    "ping",
    "installation",
    "installation_repositories",
    "workflow_run",
    "workflow_job",
    "check_suite",
    "pull_request",
    "",
    " workflow_run",
    "WORKFLOW_RUN",
];
const ACTIONS: &[&str] = &[
    "completed",
    "requested",
    "in_progress",
    "created",
    "deleted",
    "suspend",
    "unsuspend",
    "added",
    "removed",
    "",
];
const INTERESTING_BYTES: &[u8] = b"\0\xff\x7f\"\\{}[],:0-+.eE \n\t\xc3\xe2";
/// Above the default body limit (1 MiB): the 413 path.
const HUGE_BODY: usize = 1024 * 1024 + 1;

/// A mutated delivery from `seeds` (at least one).
pub(super) fn input(rng: &mut StdRng, seeds: &[Seed], used_deliveries: &[Vec<u8>]) -> Input {
    let seed = seeds.choose(rng).expect("seeds");
    let mut body = seed.body.clone();
    for _ in 0..rng.random_range(1..=4) {
        if rng.random_bool(0.5) {
            mutate_json(rng, &mut body);
        } else {
            mutate_bytes(rng, &mut body, seeds);
        }
    }
    let event = match rng.random_range(0..100) {
        0..75 => Some(seed.event.clone().into_bytes()),
        75..85 => Some(EVENTS.choose(rng).expect("events").as_bytes().to_vec()),
        85..90 => None,
        90..95 => Some(vec![0xe9, b'v', 0xff]),
        _ => Some(random_ascii(rng, 1..300)),
    };
    let delivery = match rng.random_range(0..100) {
        0..85 => Some(uuid::Uuid::new_v4().to_string().into_bytes()),
        85..90 => used_deliveries.choose(rng).cloned(),
        90..94 => None,
        94..97 => Some(random_ascii(rng, 0..400)),
        _ => Some(vec![b'd', 0xff, b' ', b'x']),
    };
    let signature = match rng.random_range(0..100) {
        0..70 => Signature::Valid,
        70..80 => Signature::Missing,
        80..90 => Signature::OverOriginal,
        _ => Signature::Garbled,
    };
    Input {
        event,
        delivery,
        signature,
        original: seed.body.clone(),
        body,
    }
}

/// The header value for `input`'s signature case, given the valid one (`sha256=<hex>` of the body) and the
/// one over the original body.
pub(super) fn signature_header(
    rng: &mut StdRng,
    case: Signature,
    valid: &str,
    over_original: &str,
) -> Option<Vec<u8>> {
    let hex = valid.trim_start_matches("sha256=");
    let header = match case {
        Signature::Valid => valid.to_owned(),
        Signature::Missing => return None,
        Signature::OverOriginal => over_original.to_owned(),
        Signature::Garbled => match rng.random_range(0..8) {
            0 => format!("sha1={hex}"),
            1 => "sha256=".to_owned(),
            2 => format!("sha256={}", &hex[..hex.len() - 1]),
            3 => format!("sha256={}zz", &hex[..hex.len() - 2]),
            4 => format!("SHA256={hex}"),
            5 => format!("sha256={}", hex.to_uppercase()),
            6 => format!("  {valid}  "),
            _ => format!("sha256={hex}{hex}"),
        },
    };
    Some(header.into_bytes())
}

fn random_ascii(rng: &mut StdRng, len: std::ops::Range<usize>) -> Vec<u8> {
    let len = rng.random_range(len);
    (0..len).map(|_| rng.random_range(0x20..0x7f)).collect()
}

fn mutate_bytes(rng: &mut StdRng, body: &mut Vec<u8>, seeds: &[Seed]) {
    if body.is_empty() {
        body.push(b'{');
    }
    let at = rng.random_range(0..body.len());
    match rng.random_range(0..10) {
        0 => body[at] ^= 1 << rng.random_range(0..8),
        1 => body[at] = *INTERESTING_BYTES.choose(rng).expect("bytes"),
        2 => body.truncate(at),
        3 => {
            let end = rng.random_range(at..=body.len().min(at + 64));
            body.drain(at..end);
        }
        4 => {
            let end = rng.random_range(at..=body.len().min(at + 64));
            let copy = body[at..end].to_vec();
            body.splice(at..at, copy);
        }
        5 => {
            let noise: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
            body.splice(at..at, noise);
        }
        6 => {
            let other = &seeds.choose(rng).expect("seeds").body;
            let from = rng.random_range(0..other.len().max(1));
            body.truncate(at);
            body.extend_from_slice(&other[from.min(other.len())..]);
        }
        7 => {
            // A repeated key: serde keeps one of them (or refuses), GitHub never sends this.
            let action = ACTIONS.choose(rng).expect("actions");
            if let Some(open) = body.iter().position(|b| *b == b'{') {
                let extra = format!("\"action\":\"{action}\",");
                body.splice(open + 1..open + 1, extra.into_bytes());
            }
        }
        8 => {
            *body = match rng.random_range(0..8) {
                0 => Vec::new(),
                1 => b"null".to_vec(),
                2 => b"[]".to_vec(),
                3 => b"\"{}\"".to_vec(),
                4 => b"1e400".to_vec(),
                5 => [b"\xef\xbb\xbf".as_slice(), body].concat(),
                6 => vec![b' '; HUGE_BODY],
                _ => (0..rng.random_range(1..512))
                    .map(|_| rng.random())
                    .collect(),
            }
        }
        _ => body.extend((0..rng.random_range(1..8)).map(|_| rng.random::<u8>())),
    }
}

/// Changes one value of the JSON body; a body that is not JSON loses its second half.
fn mutate_json(rng: &mut StdRng, body: &mut Vec<u8>) {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        body.truncate(body.len() / 2);
        return;
    };
    let mut pointers = Vec::new();
    collect_pointers(&value, String::new(), &mut pointers);
    let Some(pointer) = pointers.choose(rng).cloned() else {
        return;
    };
    let replacement = interesting_value(rng, &value);
    match rng.random_range(0..10) {
        // Removes the key (or element) at the pointer.
        0 => remove(&mut value, &pointer),
        // An unknown key next to it.
        1 => {
            if let Some(Value::Object(map)) = value.pointer_mut(parent(&pointer)) {
                map.insert(format!("unknown_{}", rng.random::<u16>()), replacement);
            }
        }
        _ => {
            if let Some(slot) = value.pointer_mut(&pointer) {
                *slot = replacement;
            }
        }
    }
    *body = serde_json::to_vec(&value).expect("a Value serialises");
}

fn collect_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                let path = format!("{at}/{key}");
                out.push(path.clone());
                collect_pointers(child, path, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let path = format!("{at}/{index}");
                out.push(path.clone());
                collect_pointers(child, path, out);
            }
        }
        _ => {}
    }
}

fn parent(pointer: &str) -> &str {
    pointer.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn remove(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last.replace("~1", "/").replace("~0", "~"));
        }
        Some(Value::Array(items)) => {
            if let Ok(index) = last.parse::<usize>()
                && index < items.len()
            {
                items.remove(index);
            }
        }
        _ => {}
    }
}

/// A value of another type, an extreme, a huge or deep one, or a value found elsewhere in the document.
fn interesting_value(rng: &mut StdRng, document: &Value) -> Value {
    match rng.random_range(0..20) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(u64::MAX),
        5 => json!(i64::MIN),
        6 => json!(1.5),
        7 => json!(1e308),
        8 => json!(""),
        9 => json!("x".repeat(rng.random_range(1_000..200_000))),
        10 => {
            let mut deep = json!(1);
            for _ in 0..rng.random_range(1..300) {
                deep = json!([deep]);
            }
            deep
        }
        11 => json!({}),
        12 => json!([]),
        13 => json!("3484a3fb816e0859fd6e1cea078d76385ff50625"),
        14 => json!("é\u{0}\u{202e}/../?#%"),
        15 => json!(ACTIONS.choose(rng).expect("actions")),
        16 => json!(rng.random::<u32>().to_string()),
        17 => json!([{ "number": rng.random_range(0..5), "head": { "sha": "x" } }]),
        _ => {
            let mut pointers = Vec::new();
            collect_pointers(document, String::new(), &mut pointers);
            pointers
                .choose(rng)
                .and_then(|p| document.pointer(p))
                .cloned()
                .unwrap_or(Value::Null)
        }
    }
}
