//! The benchmarks in quick mode, so that the programs cannot rot: each runs to the end and its
//! correctness checks (exactly one trigger per red commit, none for green ones; no SCAN; nothing
//! acknowledged lost across kills; no fuzz finding; every Socket.IO action acknowledged and answered)
//! hold.

use std::process::Command;

fn bench(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--quick")
        .args(args)
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn trigger_benchmarks_run_and_stay_exactly_once() {
    let out = bench(&["trigger"]);
    for line in [
        "P3 through the handler",
        "P3 decision only",
        "P4 60 concurrent deliveries",
        "R1 ",
    ] {
        assert_eq!(
            out.matches(line).count(),
            2,
            "one line per backend for {line:?}:\n{out}"
        );
    }
    assert_eq!(
        out.matches("missed 0, duplicated 0, wrong 0, failed answers 0")
            .count(),
        2,
        "{out}"
    );
}

#[test]
fn cluster_benchmarks_run_scan_nothing_and_lose_nothing_across_kills() {
    let out = bench(&["cluster"]);
    assert!(
        out.contains("P8 SCAN/KEYS/HSCAN/SSCAN/ZSCAN over the whole run: 0"),
        "{out}"
    );
    assert_eq!(out.matches("P8 | ").count(), 1 + 2 + 4, "{out}");
    assert_takeovers_lose_nothing(&out);
}

#[test]
fn takeovers_on_the_shared_embedded_store_lose_nothing() {
    let out = bench(&["cluster", "--part", "takeover", "--backend", "embedded"]);
    assert!(out.contains("nodes on Embedded"), "{out}");
    assert_takeovers_lose_nothing(&out);
}

fn assert_takeovers_lose_nothing(out: &str) {
    assert!(out.contains("takeovers not seen: 0"), "{out}");
    for clean in [
        "acknowledged lost 0",
        "recorded or answered twice 0",
        "events received twice 0",
        "events skipped by a client 0",
        "stored ids out of place 0",
        "answers not seen live 0",
    ] {
        assert!(out.contains(clean), "{clean}:\n{out}");
    }
}

#[test]
fn webhook_fuzzing_runs_without_findings() {
    let out = bench(&["fuzz-webhook"]);
    assert!(out.contains("R2 findings: 0"), "{out}");
}

#[test]
fn socketio_benchmarks_run_every_server_to_the_end() {
    let out = bench(&["socketio"]);
    let peers = [
        "node.js socket.io + redis-adapter",
        "python-socketio + AsyncRedisManager",
    ];
    let mut lines = vec![
        "P5 our node, client on B, conversation on A".to_owned(),
        "P5 store append".to_owned(),
        "P6 bare socketioxide (current-thread), 10 clients, median of 1 of 1".to_owned(),
        "P7 our node, median".to_owned(),
        "P7 bare socketioxide (defaults, current-thread), median".to_owned(),
        "P11 median of 1 runs: added p50".to_owned(),
    ];
    for peer in peers {
        lines.push(format!("P5 {peer}, client on B, owner A"));
        lines.push(format!("P5 median of 1 runs: {peer}"));
        lines.push(format!("P7 {peer}, median"));
    }
    for nodes in [2, 3] {
        lines.push(format!(
            "P6 our node x{nodes}, 10 clients, median of 1 of 1"
        ));
        for peer in peers {
            lines.push(format!("P6 {peer} x{nodes}, 10 clients, median of 1 of 1"));
        }
    }
    for line in lines {
        assert_eq!(out.matches(&line).count(), 1, "one line {line:?}:\n{out}");
    }
}
