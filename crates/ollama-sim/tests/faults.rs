//! Staged faults, stop/restart and the `/__sim/` control API, observed as a client would.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use ollama_sim::{Fault, SimHandle};
use serde_json::{Value, json};

fn chat_body() -> Value {
    json!({"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]})
}

/// Opens a streaming chat and returns the response for incremental reading.
async fn open_stream(sim: &SimHandle) -> reqwest::Response {
    let r = post(sim, "/api/chat", chat_body()).await;
    assert_eq!(r.status(), 200);
    r
}

/// Reads complete lines until `n` are collected (or the body ends / errors).
async fn read_lines(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    n: usize,
) -> Vec<String> {
    loop {
        let lines: Vec<String> = buf.lines().map(String::from).collect();
        if buf.matches('\n').count() >= n {
            return lines.into_iter().take(n).collect();
        }
        match stream.next().await {
            Some(Ok(b)) => buf.push_str(&String::from_utf8_lossy(&b)),
            _ => return lines,
        }
    }
}

#[tokio::test]
async fn stall_keeps_connection_open_without_data() {
    bounded(async {
        let sim = sim(fast()).await;
        sim.fault(Fault::StallMidStream { after_chunks: 2 });
        let r = open_stream(&sim).await;
        let mut s = r.bytes_stream();
        let mut buf = String::new();
        let lines = read_lines(&mut s, &mut buf, 2).await;
        assert_eq!(lines.len(), 2);
        let next = tokio::time::timeout(Duration::from_millis(400), s.next()).await;
        assert!(next.is_err(), "no data and no end of stream while stalled");
        // While stalled, the runner counts as in use: ps shows it, the fault was one-shot.
        assert_eq!(ps(&sim).await.len(), 1);
        let lines = ndjson(&sim, "/api/chat", chat_body()).await;
        assert_eq!(lines.last().expect("final")["done"], true);
    })
    .await;
}

#[tokio::test]
async fn malformed_line_then_normal_end() {
    bounded(async {
        let sim = sim(fast()).await;
        sim.fault(Fault::MalformedLine { after_chunks: 1 });
        let text = open_stream(&sim).await.text().await.expect("body");
        let lines: Vec<&str> = text.lines().collect();
        assert!(serde_json::from_str::<Value>(lines[0]).is_ok());
        assert!(
            serde_json::from_str::<Value>(lines[1]).is_err(),
            "line 2 is malformed"
        );
        let last: Value = serde_json::from_str(lines.last().expect("last")).expect("json");
        assert_eq!(last["done"], true);
    })
    .await;
}

#[tokio::test]
async fn truncated_stream_errors_without_done() {
    bounded(async {
        let sim = sim(fast()).await;
        sim.fault(Fault::TruncateStream { after_chunks: 2 });
        let r = open_stream(&sim).await;
        let mut s = r.bytes_stream();
        let mut buf = String::new();
        let mut errored = false;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => buf.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => {
                    errored = true;
                    break;
                }
            }
        }
        assert!(errored, "the body ends with a transport error");
        assert_eq!(buf.lines().count(), 2);
        assert!(!buf.contains("\"done\":true"));
    })
    .await;
}

#[tokio::test]
async fn error_mid_stream_is_one_error_line_and_no_done() {
    bounded(async {
        let sim = sim(fast()).await;
        sim.fault(Fault::ErrorMidStream {
            after_chunks: 3,
            message: "boom".into(),
        });
        let lines = ndjson(&sim, "/api/chat", chat_body()).await;
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3], json!({"error": "boom"}));
        assert!(lines.iter().all(|l| l["done"] != true));

        // Before anything was written it is a real HTTP error.
        sim.fault(Fault::ErrorMidStream {
            after_chunks: 0,
            message: "early".into(),
        });
        let r = post(&sim, "/api/chat", chat_body()).await;
        assert_eq!(r.status(), 500);
        assert_eq!(content_type(&r), "application/json; charset=utf-8");
        assert_eq!(json_of(r).await, json!({"error": "early"}));

        // stream:false turns a mid-stream error into status + body.
        sim.fault(Fault::ErrorMidStream {
            after_chunks: 2,
            message: "late".into(),
        });
        let mut body = chat_body();
        body["stream"] = json!(false);
        let r = post(&sim, "/api/chat", body).await;
        assert_eq!(r.status(), 500);
        assert_eq!(json_of(r).await, json!({"error": "late"}));
    })
    .await;
}

#[tokio::test]
async fn status_fault_counts_down() {
    bounded(async {
        let sim = sim(fast()).await;
        let busy = "server busy, please try again.  maximum pending requests exceeded";
        sim.fault(Fault::Status {
            status: 503,
            message: busy.into(),
            count: Some(2),
        });
        for _ in 0..2 {
            let r = get(&sim, "/api/tags").await;
            assert_eq!(r.status(), 503);
            assert_eq!(json_of(r).await, json!({"error": busy}));
        }
        assert_eq!(get(&sim, "/api/tags").await.status(), 200);
        // Unlimited until cleared.
        sim.fault(Fault::Status {
            status: 500,
            message: "nope".into(),
            count: None,
        });
        assert_eq!(get(&sim, "/api/ps").await.status(), 500);
        assert_eq!(get(&sim, "/api/ps").await.status(), 500);
        sim.clear_faults();
        assert_eq!(get(&sim, "/api/ps").await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn runtime_oom_expires_every_model() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "qwen2.5:7b", json!({"keep_alive": -1})).await;
        sim.fault(Fault::RuntimeOom);
        let lines = ndjson(&sim, "/api/chat", chat_body()).await;
        let last = lines.last().expect("error line");
        let msg = last["error"].as_str().expect("error line");
        assert!(msg.contains("out of memory"), "{msg}");
        assert!(lines.iter().all(|l| l["done"] != true));
        assert!(
            ps(&sim).await.is_empty(),
            "even the keep-alive-forever model is gone"
        );
    })
    .await;
}

#[tokio::test]
async fn ps_lies_gpu_while_runner_is_on_cpu() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "llama3.2:3b", json!({"options": {"num_gpu": 0}})).await;
        sim.fault(Fault::PsLiesGpu {
            model: "llama3.2:3b".into(),
        });
        let m = &ps(&sim).await[0];
        assert_eq!(m["size"], m["size_vram"], "ps claims 100% GPU");
        // Generate (stalled, so it stays "generating") and look at what NVML would show.
        sim.fault(Fault::StallMidStream { after_chunks: 1 });
        let mut body = chat_body();
        body["options"] = json!({"num_gpu": 0});
        let r = post(&sim, "/api/chat", body).await;
        let mut s = r.bytes_stream();
        let mut buf = String::new();
        read_lines(&mut s, &mut buf, 1).await;
        let view = sim.gpu_view();
        let gpu = &view.gpu.gpus[0];
        assert_eq!(gpu.utilization_gpu, Some(0));
        assert_eq!(gpu.memory_used, 0);
        assert!(
            view.runners[0].cpu_percent > 100.0,
            "{}",
            view.runners[0].cpu_percent
        );
        drop(s);
    })
    .await;
}

#[tokio::test]
async fn backend_lost_and_load_failure() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "llama3.2:3b", json!({})).await;
        let before = sim.gpu_view();
        assert!(before.gpu.gpus[0].processes[0].used_memory.unwrap_or(0) > 0);
        sim.fault(Fault::BackendLost);
        let after = sim.gpu_view();
        assert_eq!(after.gpu.gpus[0].processes[0].used_memory, Some(0));
        let m = &ps(&sim).await[0];
        assert_eq!(m["size"], m["size_vram"], "Ollama still believes the placement");
        sim.clear_faults();

        sim.fault(Fault::NvmlUnavailable { reason: "Driver Not Loaded".into() });
        let v = json_of(get(&sim, "/__sim/gpu").await).await;
        assert_eq!(v["gpu"]["nvml"], json!({"status": "unavailable", "reason": "Driver Not Loaded"}));
        sim.clear_faults();

        let msg = "llama-server process has terminated: exit status 2: CUDA driver version is insufficient";
        sim.fault(Fault::LoadFailure { message: msg.into() });
        let r = post(&sim, "/api/generate", json!({"model": "qwen2.5:7b"})).await;
        assert_eq!(r.status(), 500);
        assert_eq!(json_of(r).await, json!({"error": msg}));
    })
    .await;
}

#[tokio::test]
async fn stop_refuses_and_restart_unloads_and_drops_connections() {
    bounded(async {
        let sim = sim(fast()).await;
        load(&sim, "llama3.2:3b", json!({"keep_alive": -1})).await;
        sim.fault(Fault::StallMidStream { after_chunks: 1 });
        let r = open_stream(&sim).await;
        let mut s = r.bytes_stream();
        let mut buf = String::new();
        read_lines(&mut s, &mut buf, 1).await;

        sim.restart().await;
        // The stalled stream is cut: it ends or errors instead of hanging.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.next().await {
                    Some(Ok(_)) => continue,
                    other => return other.is_none() || matches!(other, Some(Err(_))),
                }
            }
        })
        .await;
        assert_eq!(end, Ok(true), "connection dropped by restart");
        assert!(ps(&sim).await.is_empty(), "restart unloads everything");
        assert_eq!(get(&sim, "/").await.status(), 200, "same port serves again");

        sim.stop().await;
        let err = client().get(sim.url()).send().await;
        assert!(err.is_err(), "connection refused while stopped");
        sim.restart().await;
        assert_eq!(get(&sim, "/").await.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn control_api_drives_the_simulator() {
    bounded(async {
        let sim = sim(fast()).await;
        let r = post(
            &sim,
            "/__sim/fault",
            json!({"kind": "error_mid_stream", "after_chunks": 1, "message": "via http"}),
        )
        .await;
        assert_eq!(r.status(), 202);
        let lines = ndjson(&sim, "/api/chat", chat_body()).await;
        assert_eq!(lines.last().expect("line"), &json!({"error": "via http"}));

        post(&sim, "/__sim/reply", json!({"text": "scripted"})).await;
        let mut body = chat_body();
        body["stream"] = json!(false);
        let v = json_of(post(&sim, "/api/chat", body).await).await;
        assert_eq!(v["message"]["content"], "scripted");

        let stats = json_of(get(&sim, "/__sim/stats").await).await;
        assert_eq!(stats["load_count"], 1);
        assert_eq!(stats["reload_count"], 0);

        post(
            &sim,
            "/__sim/other-vram",
            json!([{"name": "blender", "pid": 99, "bytes": 1_000_000_000u64}]),
        )
        .await;
        let gpu = json_of(get(&sim, "/__sim/gpu").await).await;
        let g = &gpu["gpu"]["gpus"][0];
        for k in [
            "index",
            "name",
            "memory_total",
            "memory_used",
            "memory_free",
            "processes",
        ] {
            assert!(g.get(k).is_some(), "{k}");
        }
        assert!(
            g["processes"]
                .as_array()
                .expect("procs")
                .iter()
                .any(|p| p["name"] == "blender" && p["used_memory"] == 1_000_000_000u64)
        );
        let runner = &gpu["runners"][0];
        assert_eq!(runner["exe"], "llama-server");
        assert_eq!(runner["cmdline"][1], "--model");
        assert_eq!(runner["cmdline"][2], runner["model_path"]);

        let r = client()
            .post(format!("{}/__sim/advance-clock?secs=600", sim.url()))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 202);
        assert!(ps(&sim).await.is_empty(), "5m default keep-alive expired");

        let recorded = sim.requests();
        assert!(
            recorded
                .iter()
                .any(|r| r.path == "/api/chat" && r.body["messages"][0]["content"] == "hi")
        );
        assert!(recorded.iter().all(|r| r.path.starts_with("/api/")));

        load(&sim, "llama3.2:3b", json!({})).await;
        let r = client()
            .post(format!("{}/__sim/restart", sim.url()))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 202);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let ok = match client().get(format!("{}/api/ps", sim.url())).send().await {
                Ok(r) => json_of(r).await["models"]
                    .as_array()
                    .is_some_and(Vec::is_empty),
                Err(_) => false,
            };
            if ok {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "restart via HTTP");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn binary_prints_url_and_exits_on_sigterm() {
    use std::io::BufRead;
    bounded(async {
        let scenario =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/small-gpu.toml");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ollama-sim"))
            .args(["--listen", "127.0.0.1:0", "--scenario"])
            .arg(&scenario)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let url = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await
        .expect("join")
        .expect("a URL line");
        let url = url.trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let body = client()
            .get(&url)
            .send()
            .await
            .expect("GET /")
            .text()
            .await
            .expect("text");
        assert_eq!(body, "Ollama is running");
        let gpu: Value = client()
            .get(format!("{url}/__sim/gpu"))
            .send()
            .await
            .expect("gpu")
            .json()
            .await
            .expect("json");
        assert_eq!(gpu["gpu"]["gpus"][0]["memory_total"], 8_585_740_288u64);
        let pid = child.id().to_string();
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(st.success());
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("exits");
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    })
    .await;
}
