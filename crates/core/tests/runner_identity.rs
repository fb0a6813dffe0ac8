//! Runner identity in the watchdog, against the simulator's process view: a runner that dies
//! and is replaced (new pid, same blob, `/api/ps` unchanged) is followed within one tick, and
//! the verdict never wavers meanwhile; memory of an unrelated process is never credited to the
//! model. `Machine::simulator` reads the simulator's runner list the way the real process
//! table is read (only known runners between full scans), so this exercises the rescan rule.

mod common;

use common::{MODEL, Rig, bounded, fast_scenario, ours_loaded, settings};
use ollama_sim::{Fault, OtherProcess};
use yollayah_core::events::{Event, Snapshot, Verdict};

fn runner_pid(s: &Snapshot) -> Option<u32> {
    s.target().and_then(|d| d.placement.runner_pid)
}

fn snapshot(e: &Event) -> Option<&Snapshot> {
    match e {
        Event::Snapshot(s) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn a_replaced_runner_is_followed_within_one_tick() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        let first = rig
            .events
            .wait_snapshot("our runner on the GPU", |s| {
                ours_loaded(s) && runner_pid(s).is_some() && s.verdict == Verdict::Gpu
            })
            .await;
        let old = runner_pid(&first).expect("runner pid");
        // A few quiet ticks: the steady state refreshes known runners only.
        rig.events.ticks(3).await;
        rig.events.drain();
        let mark = rig.events.mark();

        let (was, new) = rig.sim.replace_runner(MODEL).expect("model loaded");
        assert_eq!(was, old);
        let (at, _) = rig
            .events
            .wait_for_since(mark, "the new runner", |e| {
                snapshot(e).is_some_and(|s| runner_pid(s) == Some(new))
            })
            .await;
        // A tick already in flight may have read the old process table; the next one must
        // follow the new runner.
        let stale = rig.events.seen[mark..at]
            .iter()
            .filter(|e| snapshot(e).is_some())
            .count();
        assert!(
            stale <= 1,
            "followed only after {stale} ticks:\n{}",
            rig.events.describe()
        );
        rig.events.ticks(3).await;
        for s in rig.events.seen[mark..].iter().filter_map(snapshot) {
            assert_eq!(s.verdict, Verdict::Gpu, "verdict wavered: {}", s.headline);
        }
        assert!(
            rig.events.seen[at..]
                .iter()
                .filter_map(snapshot)
                .all(|s| runner_pid(s) == Some(new))
        );
        assert_eq!(rig.sim.load_count(), 1, "nothing was reloaded");

        // The new runner loses its GPU backend: CPU. Then an unrelated process takes GPU
        // memory: it is not the model's, the verdict stays CPU.
        rig.sim.fault(Fault::PsLiesGpu {
            model: MODEL.into(),
        });
        rig.events
            .wait_snapshot("CPU verdict", |s| s.verdict == Verdict::Cpu)
            .await;
        let mark = rig.events.mark();
        rig.sim
            .set_other_vram(vec![OtherProcess::new("python3", 777, 6 << 30)]);
        rig.events.ticks(4).await;
        for s in rig.events.seen[mark..].iter().filter_map(snapshot) {
            assert_eq!(s.verdict, Verdict::Cpu, "credited: {}", s.headline);
        }
        assert_eq!(
            rig.events
                .count_since(mark, |e| matches!(e, Event::AlertResolved(_))),
            0,
            "{}",
            rig.events.describe()
        );
        rig.cancel.cancel();
    })
    .await;
}
