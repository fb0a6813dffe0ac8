//! CPU time of one watchdog tick, end to end: `/api/ps`, the GPU view, placement, diagnosis,
//! keep-warm, the alert policy and the snapshot, against an in-process `ollama-sim`.
//!
//! The simulator runs on its own runtime thread; the watchdog runs on a current-thread runtime
//! on this thread, so this thread's scheduler run time (`/proc/thread-self/schedstat`) is the
//! watchdog's own work plus the HTTP client, never the simulator's. Two machines: a healthy one
//! (the model fully on the GPU) and a crowded one (another process holds VRAM, so the model is
//! partly on the CPU and an incident stays open, which exercises the alert path every tick).
//!
//! `cargo bench -p yollayah-core --bench tick -- [--ticks N]`. The target is ≤ 1 ms of CPU per
//! tick (docs/targets.md). The last lines are machine-readable (`TICK key=value …`).

use std::error::Error;
use std::time::{Duration, Instant};

use ollama_sim::{OtherProcess, Scenario};
use tokio_util::sync::CancellationToken;
use yollayah_core::config::Config;
use yollayah_core::machine::Machine;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::persona::Persona;
use yollayah_core::profile::ModelProfile;
use yollayah_core::watchdog::{self, WatchdogSettings};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn ticks_arg() -> BenchResult<usize> {
    // `cargo test --all-targets` runs this without `--bench`: a few ticks prove it still works.
    let mut ticks = if std::env::args().any(|a| a == "--bench") {
        400
    } else {
        10
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--ticks" {
            ticks = it.next().ok_or("--ticks needs a value")?.parse()?;
        }
    }
    Ok(ticks)
}

fn measure(name: &str, scenario: Scenario, ticks: usize) -> BenchResult<()> {
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sim = sim_rt.block_on(ollama_sim::start(scenario))?;
    let url = sim.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (per_tick_cpu, per_tick_wall) = rt.block_on(async {
        let client = OllamaClient::new(ClientConfig::new(url.clone()))?;
        let machine = Machine::simulator(&url)?;
        let persona = Persona::bundled()?;
        let profile = ModelProfile::resolve(&Config::default(), &persona);
        let cancel = CancellationToken::new();
        let settings = WatchdogSettings {
            // Ticks come from kicks only.
            tick: Duration::from_secs(3600),
            ..WatchdogSettings::default()
        };
        let handle = watchdog::spawn(
            client,
            machine,
            profile,
            OllamaEnv::default(),
            settings,
            cancel.clone(),
        );
        handle.warm().await?;
        // Settle: the first ticks read /api/show and /api/tags and scan for runners.
        for _ in 0..5 {
            handle.kick_and_wait(Duration::from_secs(5)).await;
        }
        let cpu0 = thread_cpu_ns();
        let wall0 = Instant::now();
        for _ in 0..ticks {
            handle.kick_and_wait(Duration::from_secs(5)).await;
        }
        let wall = wall0.elapsed() / ticks.max(1) as u32;
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => Some(Duration::from_nanos((b - a) / ticks.max(1) as u64)),
            _ => None,
        };
        cancel.cancel();
        BenchResult::Ok((cpu, wall))
    })?;
    let cpu_us = per_tick_cpu.map_or(-1.0, |d| d.as_secs_f64() * 1e6);
    println!(
        "tick/{name}: {cpu_us:.0} µs CPU per tick, {:.0} µs wall ({ticks} ticks)",
        per_tick_wall.as_secs_f64() * 1e6
    );
    println!("TICK machine={name} ticks={ticks} cpu_us={cpu_us:.1}");
    drop(sim);
    Ok(())
}

fn main() -> BenchResult<()> {
    let ticks = ticks_arg()?;
    let base = Scenario {
        load_ms: 0,
        ..Scenario::default()
    };
    measure("healthy", base.clone(), ticks)?;
    let crowded = Scenario {
        other_processes: vec![OtherProcess::new("python3", 4242, 10 << 30)],
        ..base
    };
    measure("incident", crowded, ticks)?;
    Ok(())
}
