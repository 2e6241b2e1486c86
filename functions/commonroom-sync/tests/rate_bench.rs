//! The rate benchmark's quick mode, so that it cannot rot: it completes, delivers everything, and never
//! puts more requests than the limit into any second. (Its throughput figure is printed by the example,
//! not asserted here.)

use e2e::fakes::commonroom::Faults;
use e2e::sync_world::rate_bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_bench_runs_within_the_limit_with_and_without_faults() {
    for faults in [Faults::none(), Faults::misbehaving(3)] {
        let figures = rate_bench(24, 20.0, faults).await;
        assert_eq!(figures.activities_stored, 24);
        assert!(figures.max_in_any_second <= 20, "{figures:?}");
        assert!(figures.achieved > 0.0);
    }
}
