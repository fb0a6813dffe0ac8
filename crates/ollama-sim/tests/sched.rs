//! Scheduler behaviour seen through the API: reloads, shared runners, placement, eviction and
//! keep-alive expiry on the simulated clock (fact sheet §4, §5, §7).

mod common;

use std::time::Duration;

use common::*;
use ollama_sim::{GpuSpec, OtherProcess, Scenario};
use serde_json::{Value, json};

fn msg() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

async fn chat(sim: &ollama_sim::SimHandle, model: &str, options: Option<Value>) {
    let mut body = json!({"model": model, "messages": msg(), "stream": false});
    if let Some(o) = options {
        body["options"] = o;
    }
    let r = post(sim, "/api/chat", body).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn differing_num_ctx_reloads_identical_does_not() {
    bounded(async {
        let sim = sim(fast()).await;
        chat(&sim, "llama3.2:3b", Some(json!({"num_ctx": 8192}))).await;
        chat(
            &sim,
            "llama3.2:3b",
            Some(json!({"num_ctx": 8192, "temperature": 0.1})),
        )
        .await;
        assert_eq!((sim.load_count(), sim.reload_count()), (1, 0));
        chat(&sim, "llama3.2:3b", Some(json!({"num_ctx": 16384}))).await;
        assert_eq!((sim.load_count(), sim.reload_count()), (2, 1));
        assert_eq!(ps(&sim).await[0]["context_length"], 16384);
        // The trap: no num_ctx against a runner loaded with an explicit one reloads.
        chat(&sim, "llama3.2:3b", None).await;
        assert_eq!(sim.reload_count(), 2);
        assert_eq!(ps(&sim).await[0]["context_length"], 4096);
        // num_ctx above the training context is capped, so these are the same.
        chat(&sim, "qwen2.5:7b", Some(json!({"num_ctx": 65536}))).await;
        chat(&sim, "qwen2.5:7b", Some(json!({"num_ctx": 32768}))).await;
        assert_eq!(sim.reload_count(), 2);
        let qwen = ps(&sim)
            .await
            .into_iter()
            .find(|m| m["name"] == "qwen2.5:7b")
            .expect("qwen");
        assert_eq!(qwen["context_length"], 32768);
    })
    .await;
}

#[tokio::test]
async fn other_load_time_options_and_num_gpu_auto() {
    bounded(async {
        let sim = sim(fast()).await;
        chat(&sim, "llama3.2:3b", Some(json!({"num_gpu": 10}))).await;
        // num_gpu -1 (or absent) never forces a reload.
        chat(&sim, "llama3.2:3b", Some(json!({"num_gpu": -1}))).await;
        chat(&sim, "llama3.2:3b", None).await;
        assert_eq!(sim.reload_count(), 0);
        chat(&sim, "llama3.2:3b", Some(json!({"num_gpu": 12}))).await;
        assert_eq!(sim.reload_count(), 1);
        chat(
            &sim,
            "llama3.2:3b",
            Some(json!({"num_gpu": 12, "num_batch": 1024})),
        )
        .await;
        assert_eq!(sim.reload_count(), 2);
        chat(
            &sim,
            "llama3.2:3b",
            Some(json!({"num_gpu": 12, "num_batch": 1024, "top_k": 5, "seed": 3})),
        )
        .await;
        assert_eq!(sim.reload_count(), 2, "sampling options never reload");
    })
    .await;
}

#[tokio::test]
async fn derived_and_base_share_or_reload() {
    bounded(async {
        let sim = sim(fast()).await;
        // Same effective options: one runner, listed under the name that loaded it.
        chat(&sim, "llama3.2:3b", Some(json!({"num_ctx": 131072}))).await;
        chat(&sim, "yollayah-old:latest", None).await;
        assert_eq!((sim.load_count(), sim.reload_count()), (1, 0));
        let rows = ps(&sim).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"], "llama3.2:3b");
        assert_eq!(rows[0]["context_length"], 131072);

        // Different PARAMETER num_ctx: switching names reloads every time.
        chat(&sim, "llama3.2:3b", None).await;
        assert_eq!(sim.reload_count(), 1);
        chat(&sim, "yollayah-old", None).await;
        assert_eq!(sim.reload_count(), 2);
        chat(&sim, "llama3.2:3b", None).await;
        assert_eq!(sim.reload_count(), 3);
        assert_eq!(ps(&sim).await.len(), 1, "still one runner per blob");
    })
    .await;
}

#[tokio::test]
async fn placement_full_partial_cpu() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "llama3.2:3b", json!({})).await;
        let m = &ps(&sim).await[0];
        assert_eq!(m["size"], m["size_vram"], "small model fits");
        let size = m["size"].as_u64().expect("size");
        assert!(size > 2_019_377_376 && size < 3_500_000_000, "{size}");

        // 131072 ctx: ~14 GiB of KV cannot fit a 12 GiB card.
        load(&sim, "yollayah-old", json!({})).await;
        let m = &ps(&sim).await[0];
        let (size, vram) = (
            m["size"].as_u64().expect("size"),
            m["size_vram"].as_u64().expect("vram"),
        );
        assert!(vram > 0 && vram < size, "partial offload: {vram}/{size}");
        assert!(vram <= 12_878_610_432 - (1 << 30), "fit margin respected");
        let view = sim.gpu_view();
        // NVML also counts the runner's CUDA runtime, which /api/ps leaves out.
        let baseline = Scenario::default().runtime_baseline_mib << 20;
        assert_eq!(
            view.gpu.gpus[0].processes[0].used_memory,
            Some(vram + baseline)
        );
        assert!(view.runners[0].rss_bytes >= size - vram);

        // num_gpu 0 forces CPU.
        load(&sim, "qwen2.5:7b", json!({"options": {"num_gpu": 0}})).await;
        let q = ps(&sim)
            .await
            .into_iter()
            .find(|m| m["name"] == "qwen2.5:7b")
            .expect("qwen");
        assert_eq!(q["size_vram"], 0);
        assert!(q["size"].as_u64().expect("size") > 4_683_073_184);
        let q_runner = sim
            .gpu_view()
            .runners
            .into_iter()
            .find(|r| r.cmdline.windows(2).any(|w| w[0] == "-ngl" && w[1] == "0"));
        assert!(q_runner.is_some(), "-ngl 0 on the command line");
    })
    .await;
}

#[tokio::test]
async fn other_process_vram_causes_partial_offload() {
    bounded(async {
        let sim = sim(fast()).await;
        sim.set_other_vram(vec![OtherProcess::new("game.exe", 5151, 10 << 30)]);
        load(&sim, "llama3.2:3b", json!({})).await;
        let m = &ps(&sim).await[0];
        let (size, vram) = (
            m["size"].as_u64().expect("size"),
            m["size_vram"].as_u64().expect("vram"),
        );
        assert!(vram > 0 && vram < size, "partial: {vram}/{size}");
        let gpu = &sim.gpu_view().gpu.gpus[0];
        let baseline = Scenario::default().runtime_baseline_mib << 20;
        assert_eq!(
            gpu.memory_used,
            ((10 << 30) + vram + baseline).min(gpu.memory_total)
        );
        assert_eq!(gpu.memory_free, gpu.memory_total - gpu.memory_used);
        assert!(
            gpu.processes
                .iter()
                .any(|p| p.name == "game.exe" && p.pid == 5151)
        );

        // Nothing left at all: everything on the CPU.
        sim.set_other_vram(vec![OtherProcess::new("hog", 1, 12 << 30)]);
        load(&sim, "qwen2.5:7b", json!({})).await;
        let q = ps(&sim)
            .await
            .into_iter()
            .find(|m| m["name"] == "qwen2.5:7b")
            .expect("qwen");
        assert_eq!(q["size_vram"], 0);
    })
    .await;
}

#[tokio::test]
async fn eviction_at_max_loaded_models_prefers_shortest_keep_alive() {
    bounded(async {
        let sc = Scenario {
            max_loaded_models: 2,
            gpus: vec![GpuSpec {
                memory_total: 80 << 30,
                ..GpuSpec::default()
            }],
            ..fast()
        };
        let sim = sim(sc).await;
        load(&sim, "qwen2.5:7b", json!({"keep_alive": -1})).await;
        load(&sim, "llama3.2:3b", json!({"keep_alive": "10m"})).await;
        load(&sim, "qwen2.5:14b", json!({})).await;
        let mut names: Vec<String> = ps(&sim)
            .await
            .iter()
            .filter_map(|m| m["name"].as_str().map(String::from))
            .collect();
        names.sort();
        assert_eq!(names, vec!["qwen2.5:14b", "qwen2.5:7b"]);
        assert_eq!(sim.load_count(), 3);
        assert_eq!(sim.reload_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_model_that_does_not_fit_evicts_others_first() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "llama3.2:3b", json!({})).await;
        load(&sim, "qwen2.5:7b", json!({})).await;
        assert_eq!(ps(&sim).await.len(), 2);
        load(&sim, "qwen2.5:14b", json!({})).await;
        let rows = ps(&sim).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["name"], "qwen2.5:14b");
        assert_eq!(rows[0]["size"], rows[0]["size_vram"], "fits once alone");
    })
    .await;
}

#[tokio::test]
async fn keep_alive_expiry_on_the_simulated_clock() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "llama3.2:3b", json!({"keep_alive": "10m"})).await;
        load(&sim, "qwen2.5:7b", json!({"keep_alive": -1})).await;
        // Forever first (sorted by expires_at, latest first).
        let rows = ps(&sim).await;
        assert_eq!(rows[0]["name"], "qwen2.5:7b");
        assert_eq!(rows[1]["name"], "llama3.2:3b");

        sim.advance_clock(Duration::from_secs(9 * 60));
        assert_eq!(ps(&sim).await.len(), 2);
        // A request without keep_alive keeps the runner's 10m (does not reset to 5m)...
        chat(&sim, "llama3.2:3b", None).await;
        sim.advance_clock(Duration::from_secs(7 * 60));
        assert_eq!(
            ps(&sim).await.len(),
            2,
            "10m kept, not reset to the 5m default"
        );
        // ...and the timer restarted when that request ended.
        sim.advance_clock(Duration::from_secs(4 * 60));
        let rows = ps(&sim).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"], "qwen2.5:7b");
        sim.advance_clock(Duration::from_secs(1000 * 24 * 3600));
        assert_eq!(ps(&sim).await.len(), 1, "forever survives");
    })
    .await;
}

#[tokio::test]
async fn keep_alive_forms_set_expires_at() {
    bounded(async {
        let sim = sim(fast()).await;
        let cases: [(Value, i64); 5] = [
            (json!(300), 300),
            (json!(1.5), 1),
            (json!("1h30m"), 5400),
            (json!("24h"), 86_400),
            (json!(null), 300),
        ];
        for (ka, secs) in cases {
            let mut body = json!({"model": "llama3.2:3b", "messages": msg(), "stream": false});
            if !ka.is_null() {
                body["keep_alive"] = ka.clone();
            }
            // Unload first so that `null` gets the default of a fresh load.
            post(
                &sim,
                "/api/generate",
                json!({"model": "llama3.2:3b", "keep_alive": 0}),
            )
            .await;
            assert_eq!(post(&sim, "/api/chat", body).await.status(), 200);
            let row = ps(&sim).await.into_iter().next().expect("loaded");
            let exp = parse_time(row["expires_at"].as_str().expect("expires_at"));
            let delta = (exp - time::OffsetDateTime::now_utc()).whole_seconds();
            assert!(
                (secs - 3..=secs).contains(&delta),
                "{ka}: {delta}s vs {secs}s"
            );
        }
        // Real wall-clock expiry works too (0.3 s keep-alive), polled with a deadline.
        post(
            &sim,
            "/api/generate",
            json!({"model": "llama3.2:3b", "keep_alive": 0.3}),
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !ps(&sim).await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "real-time expiry");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn no_gpu_and_small_gpu_scenarios() {
    bounded(async {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let fastify = |mut s: Scenario| {
            s.load_ms = 10;
            s.tokens_per_second = 5000.0;
            s
        };
        let none = Scenario::from_file(&dir.join("no-gpu.toml")).expect("no-gpu parses");
        let sim_cpu = sim(fastify(none)).await;
        load(&sim_cpu, "llama3.2:3b", json!({})).await;
        assert_eq!(ps(&sim_cpu).await[0]["size_vram"], 0);
        let view = sim_cpu.gpu_view();
        assert!(matches!(
            view.gpu.nvml,
            ollama_sim::NvmlStatus::Unavailable { .. }
        ));
        assert!(view.gpu.gpus.is_empty());

        let small = Scenario::from_file(&dir.join("small-gpu.toml")).expect("small parses");
        let sim8 = sim(fastify(small)).await;
        load(&sim8, "llama3.2:3b", json!({})).await;
        let m = &ps(&sim8).await[0];
        assert_eq!(m["size"], m["size_vram"]);
        load(&sim8, "yollayah-old", json!({})).await;
        let m = &ps(&sim8).await[0];
        let (size, vram) = (
            m["size"].as_u64().expect("size"),
            m["size_vram"].as_u64().expect("vram"),
        );
        assert!(
            vram < size / 2,
            "derived 131072-ctx model spills: {vram}/{size}"
        );

        let default = Scenario::from_file(&dir.join("default.toml")).expect("default parses");
        assert_eq!(default.gpus[0].memory_total, 12_878_610_432);
    })
    .await;
}
