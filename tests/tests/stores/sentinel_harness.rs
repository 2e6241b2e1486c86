//! The Sentinel harness itself (`e2e::sentinel`): a real failover after `kill -9` of the master, with
//! no acknowledged write lost, and the dead master back as a replica.

use std::time::{Duration, Instant};

use e2e::sentinel::SentinelRedis;

#[test]
fn the_harness_fails_over_and_the_killed_master_rejoins_as_a_replica() {
    let mut redis = SentinelRedis::start("harness");
    assert_eq!(redis.master_name(), "harness");
    assert_eq!(redis.sentinel_addrs().len(), 3);
    let old = redis.master_port();
    assert_eq!(redis.cli(old, &["SET", "survivor", "kept"]).trim(), "OK");
    // Replicated before the kill: only then may the new master be expected to have it.
    assert_eq!(redis.cli(old, &["WAIT", "1", "1000"]).trim(), "1");

    assert_eq!(redis.kill_master(), old);
    let took = redis.wait_for_failover(old, Duration::from_secs(15));
    let new = redis.master_port();
    assert_ne!(new, old);
    println!("failover after {took:?}: master {old} -> {new}");
    assert!(took <= Duration::from_secs(15), "took {took:?}");
    assert_eq!(redis.cli(new, &["GET", "survivor"]).trim(), "kept");

    assert_eq!(redis.restart_killed(), old);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // `ROLE` on a replica: `slave`, the master's host and port, the link state, the offset.
        let role = redis.cli(old, &["ROLE"]);
        let role: Vec<&str> = role.lines().collect();
        if role.len() >= 4
            && role[0] == "slave"
            && role[2] == new.to_string()
            && role[3] == "connected"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted server is not a connected replica of {new}: ROLE {role:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Synced from the new master, although it restarted empty.
    assert_eq!(redis.cli(old, &["GET", "survivor"]).trim(), "kept");
    assert_eq!(redis.master_port(), new);
}
