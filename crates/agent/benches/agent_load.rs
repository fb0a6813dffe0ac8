//! Load bench of `yollayah agent` (not a timed test: it prints figures; `scripts/bench.sh`
//! records them in docs/benchmarks.md).
//!
//! 1. One `/metrics` render with 3 models and 2 GPUs (in process, Text and OpenMetrics).
//! 2. The real binaries as separate processes: `ollama-sim` with 2 GPUs and 3 loaded models,
//!    `yollayah agent` on it. Agent CPU per scrape (its /proc CPU time over many sequential
//!    scrapes, minus its idle rate); 50 concurrent scrapers and 100 event subscribers for
//!    60 s (errors, agent RSS over time); idle RSS and CPU per tick of the agent next to
//!    `yollayah watch` on the same simulator.
//!
//! `cargo bench -p yollayah-agent --bench agent_load` runs the full durations; run by
//! `cargo test` (no `--bench` argument) it does one short round. Env: AGENT_LOAD_S (60),
//! AGENT_IDLE_S (30). Part 2 needs `yollayah` and `ollama-sim` built in the same profile
//! (scripts/bench.sh builds them); without them it says so and skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use yollayah_agent::facts::{
    Counters, Facts, GpuFacts, ModelFacts, PlacementState, ProcessFacts, SelfFacts,
};
use yollayah_agent::metrics::render;
use yollayah_agent::negotiate::Format;

const TICK: Duration = Duration::from_secs(2);
const SCENARIO: &str = r#"
load_ms = 200
max_loaded_models = 3

[[gpus]]
name = "NVIDIA RTX A5000"
memory_total = 25757220864
uuid = "GPU-00000000-0000-0000-0000-00000000a500"

[[gpus]]
name = "NVIDIA RTX A5000"
memory_total = 25757220864
uuid = "GPU-00000000-0000-0000-0000-00000000a501"

[[other_processes]]
name = "Xorg"
pid = 1201
bytes = 314572800
kind = "graphics"

[[other_processes]]
name = "python3"
pid = 5150
bytes = 2147483648
gpu = 1

[[other_processes]]
name = "jupyter-lab"
pid = 5151
bytes = 1073741824
gpu = 1
"#;

fn facts_3_models_2_gpus() -> (Facts, Counters) {
    let model = |name: &str, placement, share: f64, size: u64| ModelFacts {
        name: name.into(),
        loaded: true,
        placement,
        cpu_share: Some(share),
        size_bytes: Some(size),
        vram_bytes: Some((size as f64 * (1.0 - share)) as u64),
        runner_gpu_bytes: Some((size as f64 * (1.0 - share)) as u64 + (300 << 20)),
        context_length: Some(8192),
        expires_in_seconds: Some(287.4),
        contradiction: false,
    };
    let procs = |base: u32| {
        (0..5)
            .map(|i| ProcessFacts {
                pid: base + i,
                name: format!("proc-{i}"),
                bytes: (u64::from(i) + 1) << 28,
            })
            .collect::<Vec<_>>()
    };
    let gpu = |index: u32| GpuFacts {
        index,
        name: "NVIDIA RTX A5000".into(),
        uuid: format!("GPU-{index:08}"),
        memory_used_bytes: 20 << 30,
        memory_total_bytes: 24 << 30,
        utilization: Some(0.37),
        top_processes: procs(1000 * (index + 1)),
    };
    let facts = Facts {
        observed: true,
        ollama_up: true,
        ollama_version: Some("0.33.0".into()),
        nvml_up: true,
        watched_model: "llama3.2:3b".into(),
        open_incidents: 1,
        models: vec![
            model("llama3.2:3b", PlacementState::Gpu, 0.0, 3_361_554_656),
            model("qwen2.5:7b", PlacementState::Gpu, 0.0, 5_963_000_000),
            model("qwen2.5:14b", PlacementState::Partial, 0.31, 11_900_000_000),
        ],
        gpus: vec![gpu(0), gpu(1)],
        observed_at_seconds: 1.7e9,
    };
    let mut counters = Counters::default();
    for m in ["llama3.2:3b", "qwen2.5:7b", "qwen2.5:14b"] {
        counters.init_for(m);
    }
    Counters::bump(&mut counters.alerts_raised, "CTX_TOO_LARGE".to_owned());
    (facts, counters)
}

fn bench_render(iterations: u32) -> (f64, f64, usize) {
    let (facts, counters) = facts_3_models_2_gpus();
    let me = SelfFacts::default();
    let mut buf = String::new();
    let mut per = |format| {
        render(&mut buf, format, &facts, &counters, &me);
        let t = Instant::now();
        for _ in 0..iterations {
            render(&mut buf, format, &facts, &counters, &me);
            std::hint::black_box(buf.len());
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
    };
    let text = per(Format::Text);
    let om = per(Format::OpenMetrics);
    (text, om, buf.len())
}

/// utime + stime of a process, in seconds (clock ticks of 10 ms, USER_HZ = 100 on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces, in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn bin_dir() -> Option<PathBuf> {
    // target/<profile>/deps/agent_load-<hash> → target/<profile>
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.to_owned();
    (dir.join("yollayah").is_file() && dir.join("ollama-sim").is_file()).then_some(dir)
}

fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut c = Command::new(bin);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    Proc(
        c.spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display())),
    )
}

async fn wait_for(url: &str, client: &reqwest::Client, needle: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(r) = client.get(url).send().await {
            if r.text().await.is_ok_and(|t| t.contains(needle)) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

struct Durations {
    scrapes: u32,
    load: Duration,
    idle: Duration,
}

fn env_secs(key: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

async fn processes(dir: &Path, d: &Durations) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("bench.toml");
    std::fs::write(&scenario, SCENARIO).expect("scenario");
    let sim_port = free_port();
    let agent_port = free_port();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let agent = format!("http://127.0.0.1:{agent_port}");
    let _sim = spawn(
        &dir.join("ollama-sim"),
        &[
            "--listen",
            &format!("127.0.0.1:{sim_port}"),
            "--scenario",
            &scenario.to_string_lossy(),
        ],
        &[],
    );
    let config = tmp.path().join("none.toml");
    let config = config.to_string_lossy().into_owned();
    let common = [
        ("YOLLAYAH_CONFIG", config.as_str()),
        ("YOLLAYAH_OLLAMA_URL", sim_url.as_str()),
    ];
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    assert!(wait_for(&format!("{sim_url}/api/version"), &http, "version").await);
    // Two more models, kept forever, next to the watched one the agent warms.
    for m in ["qwen2.5:7b", "qwen2.5:14b"] {
        let _ = http
            .post(format!("{sim_url}/api/generate"))
            .json(&serde_json::json!({ "model": m, "keep_alive": -1 }))
            .send()
            .await;
    }
    let agent_proc = spawn(
        &dir.join("yollayah"),
        &[
            "--model",
            "llama3.2:3b",
            "agent",
            "--gpu-source",
            "sim",
            "--listen",
            &format!("127.0.0.1:{agent_port}"),
        ],
        &common,
    );
    let pid = agent_proc.0.id();
    let metrics = format!("{agent}/metrics");
    assert!(
        wait_for(
            &metrics,
            &http,
            "yollayah_model_placement{model=\"qwen2.5:14b\""
        )
        .await,
        "agent never showed 3 models"
    );
    let body = http
        .get(&metrics)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let models = body.matches("ollama_model_loaded{").count();
    let gpus = body.matches("yollayah_gpu_memory_total_bytes{").count();

    // Idle rate first (ticks only), then sequential scrapes.
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let idle_rate = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    let c1 = cpu_seconds(pid);
    let t1 = Instant::now();
    for _ in 0..d.scrapes {
        let r = http.get(&metrics).send().await.expect("scrape");
        assert!(r.status().is_success());
        let _ = r.bytes().await.expect("body");
    }
    let spent = cpu_seconds(pid) - c1 - idle_rate * t1.elapsed().as_secs_f64();
    let per_scrape_us = (spent.max(0.0) * 1e6) / f64::from(d.scrapes);

    // 50 scrapers + 100 subscribers.
    let rss_before = status_kib(pid, "VmRSS:");
    let errors = Arc::new(AtomicU64::new(0));
    let scrapes = Arc::new(AtomicU64::new(0));
    let lines = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, url, errors, lines, stop) = (
            http.clone(),
            format!("{agent}/api/v1/events"),
            errors.clone(),
            lines.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().expect("client");
            let _ = http;
            let Ok(mut resp) = client.get(&url).send().await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    c = resp.chunk() => match c {
                        Ok(Some(b)) => { lines.fetch_add(b.iter().filter(|x| **x == b'\n').count() as u64, Ordering::Relaxed); }
                        _ => { errors.fetch_add(1, Ordering::Relaxed); return; }
                    }
                }
            }
        }));
    }
    for _ in 0..50 {
        let (http, url, errors, scrapes, stop) = (
            http.clone(),
            metrics.clone(),
            errors.clone(),
            scrapes.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let ok = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                let counter = if ok { &scrapes } else { &errors };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let c2 = cpu_seconds(pid);
    let t2 = Instant::now();
    let mut rss_max = rss_before;
    let mut rss_samples = Vec::new();
    while t2.elapsed() < d.load {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = status_kib(pid, "VmRSS:");
        rss_max = rss_max.max(rss);
        rss_samples.push(rss);
    }
    let load_cpu = cpu_seconds(pid) - c2;
    let load_s = t2.elapsed().as_secs_f64();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let rss_end = status_kib(pid, "VmRSS:");
    // Memory must not grow with time under constant load: compare the second half's peak
    // with the first half's.
    let half = rss_samples.len() / 2;
    let first_peak = rss_samples[..half].iter().copied().max().unwrap_or(0);
    let second_peak = rss_samples[half..].iter().copied().max().unwrap_or(0);

    // Idle: the agent (no clients) next to `yollayah watch` on the same simulator.
    let watch = spawn(
        &dir.join("yollayah"),
        &["--model", "llama3.2:3b", "watch", "--gpu-source", "sim"],
        &common,
    );
    let wpid = watch.0.id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (a0, w0) = (cpu_seconds(pid), cpu_seconds(wpid));
    let t3 = Instant::now();
    tokio::time::sleep(d.idle).await;
    let ticks = t3.elapsed().as_secs_f64() / TICK.as_secs_f64();
    let agent_tick_ms = (cpu_seconds(pid) - a0) * 1e3 / ticks;
    let watch_tick_ms = (cpu_seconds(wpid) - w0) * 1e3 / ticks;
    let (agent_rss, watch_rss) = (status_kib(pid, "VmRSS:"), status_kib(wpid, "VmRSS:"));

    let errors = errors.load(Ordering::Relaxed);
    println!(
        "AGENT models={models} gpus={gpus} scrape_cpu_us={per_scrape_us:.0} load_s={load_s:.0} scrapes={} event_lines={} errors={errors} load_cpu_pct={:.0} rss_before_kib={rss_before} rss_max_kib={rss_max} rss_first_half_peak_kib={first_peak} rss_second_half_peak_kib={second_peak} rss_end_kib={rss_end} idle_s={:.0} agent_cpu_per_tick_ms={agent_tick_ms:.2} watch_cpu_per_tick_ms={watch_tick_ms:.2} agent_idle_rss_kib={agent_rss} watch_idle_rss_kib={watch_rss}",
        scrapes.load(Ordering::Relaxed),
        lines.load(Ordering::Relaxed),
        load_cpu / load_s * 100.0,
        d.idle.as_secs_f64(),
    );
    assert_eq!(errors, 0, "errors under load");
    assert!(
        models >= 3 && gpus == 2,
        "expected 3 models and 2 GPUs, got {models} and {gpus}"
    );
}

fn main() {
    yollayah_core::ollama::client::ensure_crypto_provider();
    let full = std::env::args().any(|a| a == "--bench");
    let d = if full {
        Durations {
            scrapes: 5000,
            load: env_secs("AGENT_LOAD_S", 60),
            idle: env_secs("AGENT_IDLE_S", 30),
        }
    } else {
        Durations {
            scrapes: 200,
            load: Duration::from_secs(3),
            idle: Duration::from_secs(4),
        }
    };
    let (text_us, om_us, bytes) = bench_render(if full { 20_000 } else { 200 });
    println!(
        "AGENT_RENDER models=3 gpus=2 text_us={text_us:.1} openmetrics_us={om_us:.1} bytes={bytes}"
    );
    let Some(dir) = bin_dir() else {
        println!(
            "SKIPPED process measurements: build `yollayah` and `ollama-sim` in this profile first \
             (cargo build --release -p yollayah-cli -p ollama-sim)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(processes(&dir, &d));
}
