//! `yollayah doctor --gpu-source sim --json` for every placement the simulator can stage, the
//! capture → offline round trip, and the exit code that goes with each verdict. The JSON
//! fields are asserted, not only the codes: scripts and bug reports read them.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ollama_sim::{Fault, Scenario};

#[tokio::test(flavor = "multi_thread")]
async fn full_gpu_is_exit_0() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let args = [
            "--url",
            &url,
            "--model",
            "llama3.2:3b",
            "doctor",
            "--load",
            "--gpu-source",
            "sim",
            "--json",
        ];
        let r = home.run(&args).await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "gpu");
        assert_eq!(j["exit_code"], 0);
        assert_eq!(j["reachable"], true);
        assert_eq!(j["ollama_version"], "0.33.0");
        assert_eq!(j["gpu"]["gpus"][0]["name"], "NVIDIA GeForce RTX 4070");
        let d = diagnosis(&j, "llama3.2:3b");
        assert_eq!(d["loaded"], true);
        assert_eq!(d["placement"]["placement"]["kind"], "gpu");
        assert_eq!(d["placement"]["ps_processor"], "100% GPU");
        assert_eq!(d["placement"]["nvml_agrees"], true);
        // --load asked for a 5m keep_alive, which the sim recorded.
        let load = sim
            .requests()
            .into_iter()
            .find(|r| r.path == "/api/generate")
            .unwrap();
        assert_eq!(load.body["keep_alive"], "5m");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_is_exit_5_with_ctx_advice() {
    bounded(async {
        let sim = sim(scenario_file("small-gpu.toml")).await;
        let home = Home::new();
        let url = sim.url();
        let args = [
            "--url",
            &url,
            "--model",
            "yollayah-old:latest",
            "doctor",
            "--load",
            "--gpu-source",
            "sim",
            "--json",
        ];
        let r = home.run(&args).await;
        assert_eq!(r.code, 5, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "partial");
        assert_eq!(j["exit_code"], 5);
        let d = diagnosis(&j, "yollayah-old:latest");
        assert_eq!(d["placement"]["placement"]["kind"], "partial");
        let cpu = d["placement"]["placement"]["cpu_pct"].as_u64().unwrap();
        assert!(cpu > 0 && cpu < 100, "{d:#}");
        let top = &d["findings"][0];
        assert_eq!(top["code"], "CTX_TOO_LARGE", "{d:#}");
        assert_eq!(top["rank"], 1);
        let suggested = top["suggested_num_ctx"].as_u64().unwrap();
        assert!(
            (1024..131072).contains(&suggested),
            "suggested_num_ctx {suggested}"
        );
        // The human report spells out the same commands, ready to paste.
        let commands: Vec<&str> = top["commands"]
            .as_array()
            .expect("commands")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        assert!(!commands.is_empty(), "{top:#}");
        let human = home.run(&args[..args.len() - 1]).await;
        assert_eq!(human.code, 5, "{human:?}");
        for c in commands {
            assert!(
                human.stdout.contains(&format!("$ {c}")),
                "{c} missing from:\n{}",
                human.stdout
            );
        }
        sim.shutdown().await;
    })
    .await;
}

/// A scenario whose derived model carries `PARAMETER num_gpu 0`: the classic "my model runs on
/// the CPU" Modelfile.
fn num_gpu_zero_scenario() -> Scenario {
    let mut sc = Scenario::from_toml_str(
        r#"
[[gpus]]
name = "NVIDIA GeForce RTX 4070"
memory_total = 12878610432

[[models]]
name = "llama3.2:3b"
file_size = 2019377376
arch = "llama"
block_count = 28
context_length = 131072
embedding_length = 3072
head_count = 24
head_count_kv = 8
key_length = 128
value_length = 128

[[models]]
name = "cpubot:latest"
from = "llama3.2:3b"
system = "You are a bot."
[models.parameters]
num_gpu = 0
"#,
    )
    .unwrap();
    sc.load_ms = 100;
    sc
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_is_exit_6_with_num_gpu_zero() {
    bounded(async {
        let sim = sim(num_gpu_zero_scenario()).await;
        let home = Home::new();
        let url = sim.url();
        let args = [
            "--url",
            &url,
            "--model",
            "cpubot:latest",
            "doctor",
            "--load",
            "--gpu-source",
            "sim",
            "--json",
        ];
        let r = home.run(&args).await;
        assert_eq!(r.code, 6, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "cpu");
        let d = diagnosis(&j, "cpubot:latest");
        assert_eq!(d["placement"]["placement"]["kind"], "cpu");
        assert_eq!(d["placement"]["ps_processor"], "100% CPU");
        assert_eq!(d["findings"][0]["code"], "NUM_GPU_ZERO", "{d:#}");
        sim.shutdown().await;
    })
    .await;
}

/// ollama/ollama#17290 and #16415 on the wire: Ollama 0.32.1 on driver 535 drops the GPU at
/// discovery; NVML still shows an idle, healthy board. The cause is the driver, not memory and
/// not a lost backend, and nothing offers a reload.
#[tokio::test(flavor = "multi_thread")]
async fn a_driver_too_old_for_the_server_is_named() {
    bounded(async {
        let mut sc = demo();
        sc.version = "0.32.1".into();
        sc.driver_version = Some("535.309.01".into());
        let sim = sim(sc).await;
        let home = Home::new();
        let url = sim.url();
        let args = [
            "--url",
            &url,
            "--model",
            "llama3.2:3b",
            "doctor",
            "--load",
            "--gpu-source",
            "sim",
            "--json",
        ];
        let r = home.run(&args).await;
        assert_eq!(r.code, 6, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "cpu");
        let d = diagnosis(&j, "llama3.2:3b");
        assert_eq!(d["placement"]["ps_processor"], "100% CPU");
        let top = &d["findings"][0];
        assert_eq!(top["code"], "DRIVER_TOO_OLD", "{d:#}");
        assert!(top["remedy"].as_str().unwrap().contains("570"), "{top:#}");
        assert!(!codes(d).contains(&"GPU_BACKEND_LOST".to_owned()), "{d:#}");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_loaded_is_exit_4() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let args = [
            "--url",
            &url,
            "--model",
            "llama3.2:3b",
            "doctor",
            "--gpu-source",
            "sim",
            "--json",
        ];
        let r = home.run(&args).await;
        assert_eq!(r.code, 4, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "not_loaded");
        assert_eq!(j["reachable"], true);
        let d = diagnosis(&j, "llama3.2:3b");
        assert_eq!(d["loaded"], false);
        assert!(codes(d).contains(&"NOT_LOADED".to_owned()), "{d:#}");
        // Only reading: nothing was loaded by the check.
        assert!(sim.loaded_models().is_empty());
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_is_exit_3_and_still_reports_the_gpu() {
    bounded(async {
        let home = Home::new();
        let url = closed_url();
        let gpu_file = home.dir.path().join("gpu.json");
        std::fs::write(
            &gpu_file,
            r#"{"nvml":{"status":"ok"},"driver_version":"580.65.06","gpus":[{"index":0,"name":"NVIDIA GeForce RTX 4070","memory_total":12878610432,"memory_used":536870912,"memory_free":12341739520,"utilization_gpu":0,"processes":[]}]}"#,
        )
        .unwrap();
        let gpu = gpu_file.to_str().unwrap();
        let r = home.run(&["--url", &url, "doctor", "--gpu-source", gpu, "--json"]).await;
        assert_eq!(r.code, 3, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "unreachable");
        assert_eq!(j["reachable"], false);
        assert!(j["error"].as_str().unwrap().contains("not reachable"), "{j:#}");
        assert_eq!(j["gpu"]["gpus"][0]["memory_used"], 536870912u64);
        // The human form says how to start Ollama.
        let r = home.run(&["--url", &url, "doctor", "--gpu-source", gpu]).await;
        assert_eq!(r.code, 3);
        assert!(r.stdout.contains("NOT reachable"), "{r:?}");
        assert!(r.stdout.contains("ollama serve"), "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ps_contradicting_nvml_is_exit_6() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let load = [
            "--url",
            &url,
            "--model",
            "llama3.2:3b",
            "doctor",
            "--load",
            "--gpu-source",
            "sim",
            "--json",
        ];
        assert_eq!(home.run(&load).await.code, 0);
        sim.fault(Fault::PsLiesGpu {
            model: "llama3.2:3b".into(),
        });
        let args = [
            "--url",
            &url,
            "--model",
            "llama3.2:3b",
            "doctor",
            "--gpu-source",
            "sim",
            "--json",
        ];
        let r = home.run(&args).await;
        assert_eq!(r.code, 6, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "cpu");
        let d = diagnosis(&j, "llama3.2:3b");
        assert_eq!(d["placement"]["ps_processor"], "100% GPU");
        assert_eq!(d["placement"]["nvml_agrees"], false);
        assert_eq!(d["placement"]["contradiction"], true);
        let top = d["findings"][0]["code"].as_str().unwrap();
        assert!(
            top == "PS_CONTRADICTS_NVML" || top == "GPU_BACKEND_LOST",
            "top finding {top}: {d:#}"
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_then_offline_gives_the_same_verdict() {
    bounded(async {
        let sim = sim(scenario_file("small-gpu.toml")).await;
        let home = Home::new();
        let url = sim.url();
        let bundle = home.dir.path().join("bundle.json");
        let bundle = bundle.to_str().unwrap();
        let args = [
            "--url",
            &url,
            "--model",
            "yollayah-old:latest",
            "doctor",
            "--load",
            "--gpu-source",
            "sim",
            "--json",
            "--capture",
            bundle,
        ];
        let live = home.run(&args).await;
        assert_eq!(live.code, 5, "{live:?}");
        // No simulator any more: the bundle alone must carry the diagnosis.
        sim.shutdown().await;
        let args = [
            "--model",
            "yollayah-old:latest",
            "doctor",
            "--from",
            bundle,
            "--json",
        ];
        let offline = home.run(&args).await;
        assert_eq!(offline.code, live.code, "{offline:?}");
        let (live, offline) = (live.json(), offline.json());
        assert_eq!(offline["verdict"], live["verdict"]);
        assert_eq!(offline["ollama_url"], live["ollama_url"]);
        let (l, o) = (
            diagnosis(&live, "yollayah-old:latest"),
            diagnosis(&offline, "yollayah-old:latest"),
        );
        assert_eq!(codes(o), codes(l));
        assert!(!codes(l).is_empty());
        assert_eq!(
            o["findings"][0]["suggested_num_ctx"],
            l["findings"][0]["suggested_num_ctx"]
        );
        assert_eq!(o["placement"], l["placement"]);
        // A file that is not a bundle is bad input.
        std::fs::write(home.dir.path().join("junk.json"), "{}").unwrap();
        let junk = home.dir.path().join("junk.json");
        let r = home
            .run(&["doctor", "--from", junk.to_str().unwrap()])
            .await;
        assert_eq!(r.code, 8, "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn load_without_model_is_a_usage_error() {
    bounded(async {
        let home = Home::new();
        let r = home
            .run(&["--url", &closed_url(), "doctor", "--load"])
            .await;
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("--model"), "{r:?}");
    })
    .await;
}
