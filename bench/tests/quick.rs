//! The benchmarks in quick mode, so that the programs cannot rot: each runs to the end and its
//! correctness checks (exactly one trigger per red commit, none for green ones) hold.

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
        out.matches("missed 0, duplicated 0, green commits triggered 0, failed answers 0")
            .count(),
        2,
        "{out}"
    );
}
