//! The other commands against the simulator: status, warm/unload, chat and history, bench,
//! watch and config. Each runs the real binary with a private temp home.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use ollama_sim::Fault;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn status_up_and_down() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let r = home.run(&["--url", &url, "status", "--json"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["reachable"], true);
        assert_eq!(j["version"], "0.33.0");
        assert_eq!(j["url"], url.as_str());
        assert_eq!(j["models"].as_array().unwrap().len(), 0);
        sim.shutdown().await;
        let r = home.run(&["--url", &url, "status", "--json"]).await;
        assert_eq!(r.code, 3, "{r:?}");
        let j = r.json();
        assert_eq!(j["reachable"], false);
        assert!(j["error"].as_str().unwrap().contains("not reachable"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_url_is_used_and_flag_wins() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        home.write_config(&format!("[ollama]\nurl = \"{}\"\n", sim.url()));
        let r = home.run(&["status", "--json"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json()["url"], sim.url().as_str());
        let closed = closed_url();
        let r = home.run(&["--url", &closed, "status", "--json"]).await;
        assert_eq!(r.code, 3, "{r:?}");
        assert_eq!(r.json()["url"], closed.as_str());
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_loads_forever_with_the_profile_options() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let r = home
            .run(&["--url", &url, "warm", "--gpu-source", "sim", "--json"])
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "gpu");
        assert_eq!(diagnosis(&j, "llama3.2:3b")["loaded"], true);
        // Exactly what the watchdog sends: keep_alive -1, and no num_ctx, since the bundled
        // persona pins none (the server's context is used).
        let load = sim
            .requests()
            .into_iter()
            .find(|r| r.path == "/api/generate")
            .unwrap();
        assert_eq!(load.body["model"], "llama3.2:3b");
        assert_eq!(load.body["keep_alive"], -1);
        assert!(
            load.body["options"].get("num_ctx").is_none(),
            "{}",
            load.body
        );

        let r = home.run(&["--url", &url, "status", "--json"]).await;
        assert_eq!(r.code, 0);
        let j = r.json();
        let m = &j["models"][0];
        assert_eq!(m["name"], "llama3.2:3b");
        assert_eq!(
            m["context_length"], 4096,
            "the server's default on the demo GPU"
        );
        assert_eq!(m["processor"], "100% GPU");
        let expires = m["expires_at"].as_str().unwrap();
        let year: i32 = expires[..4].parse().unwrap();
        assert!(year > 2200, "expires_at {expires} is not 'forever'");

        let r = home.run(&["--url", &url, "unload"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(sim.loaded_models().is_empty());
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_judges_the_options_it_sent() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        home.write_config("[model.load]\nnum_gpu = 0\n");
        let url = sim.url();
        let r = home
            .run(&["--url", &url, "warm", "--gpu-source", "sim", "--json"])
            .await;
        assert_eq!(r.code, 6, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"], "cpu");
        let d = diagnosis(&j, "llama3.2:3b");
        assert_eq!(d["findings"][0]["code"], "NUM_GPU_ZERO", "{d:#}");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_when_down_is_exit_3() {
    bounded(async {
        let home = Home::new();
        let r = home.run(&["--url", &closed_url(), "warm"]).await;
        assert_eq!(r.code, 3, "{r:?}");
        assert!(r.stderr.contains("not reachable"), "{r:?}");
    })
    .await;
}

fn history(run: &Run) -> Vec<Value> {
    assert_eq!(run.code, 0, "{run:?}");
    run.json().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_chat_streams_and_is_stored() {
    bounded(async {
        let sim = sim(demo()).await;
        sim.set_reply("Hi from the simulator, friend.");
        let home = Home::new();
        let url = sim.url();
        let r = home.run(&["--url", &url, "chat", "hi", "there"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout.trim(), "Hi from the simulator, friend.");
        assert!(r.stderr.contains("TTFT"), "{r:?}");
        assert!(r.stderr.contains("tok/s"), "{r:?}");
        assert!(r.stderr.contains("load"), "{r:?}");
        // The request carried the persona and the same load options as a warm-up.
        let chat = sim
            .requests()
            .into_iter()
            .find(|r| r.path == "/api/chat")
            .unwrap();
        assert_eq!(chat.body["messages"][0]["role"], "system");
        assert_eq!(chat.body["messages"][1]["content"], "hi there");
        assert!(
            chat.body["options"].get("num_ctx").is_none(),
            "{}",
            chat.body
        );
        assert_eq!(chat.body["keep_alive"], -1);

        let list = history(&home.run(&["history", "--json"]).await);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["title"], "hi there");
        assert_eq!(list[0]["messages"], 2);
        assert_eq!(list[0]["model"], "llama3.2:3b");
        // The database lives under the temp XDG_DATA_HOME.
        assert!(
            home.dir
                .path()
                .join("data/yollayah/history.sqlite3")
                .is_file()
        );

        // --conversation continues it.
        let id = list[0]["id"].as_i64().unwrap().to_string();
        let r = home
            .run(&["--url", &url, "chat", "--conversation", &id, "again"])
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        let list = history(&home.run(&["history", "--json"]).await);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["messages"], 4);
        let chat = sim
            .requests()
            .into_iter()
            .rfind(|r| r.path == "/api/chat")
            .unwrap();
        // system, hi there, reply, again.
        assert_eq!(chat.body["messages"].as_array().unwrap().len(), 4);

        let r = home
            .run(&["--url", &url, "chat", "--conversation", "999", "x"])
            .await;
        assert_eq!(r.code, 8, "{r:?}");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repl_reads_stdin_and_new_starts_a_conversation() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let r = home
            .run_with_stdin(&["--url", &url, "chat"], Some("hello\nmore\n/new\nagain\n"))
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stderr.matches("TTFT").count(), 3, "{r:?}");
        let list = history(&home.run(&["history", "--json"]).await);
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0]["title"], "again");
        assert_eq!(list[0]["messages"], 2);
        assert_eq!(list[1]["title"], "hello");
        assert_eq!(list[1]["messages"], 4);
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_history_keeps_nothing_and_down_writes_nothing() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let r = home
            .run(&["--url", &url, "chat", "--no-history", "hi"])
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(history(&home.run(&["history", "--json"]).await).is_empty());
        sim.shutdown().await;
        let r = home.run(&["--url", &url, "chat", "hi"]).await;
        assert_eq!(r.code, 3, "{r:?}");
        assert!(history(&home.run(&["history", "--json"]).await).is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupted_reply_is_kept_incomplete() {
    bounded(async {
        let sim = sim(demo()).await;
        // The reply stalls after two chunks, so the interrupt lands mid-reply.
        sim.fault(Fault::StallMidStream { after_chunks: 2 });
        let home = Home::new();
        let url = sim.url();
        let mut child = home
            .command(&["--url", &url, "chat", "tell me"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // Wait for the first streamed bytes (the partial reply) before interrupting.
        let mut first = Vec::new();
        out.fill_buf().await.unwrap();
        first.extend_from_slice(out.buffer());
        assert!(!first.is_empty());
        let kill = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(130));
        let list = history(&home.run(&["history", "--json"]).await);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["messages"], 2, "the partial reply is kept");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_reports_no_reloads_when_warm() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let r = home
            .run(&["--url", &url, "bench", "--requests", "3", "--json"])
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["model"], "llama3.2:3b");
        assert_eq!(j["placement"], "100% GPU");
        // The warm-up really loaded (the scenario takes 300 ms)...
        assert!(j["warm_ms"].as_u64().unwrap() >= 300, "{j:#}");
        let reqs = j["requests"].as_array().unwrap();
        assert_eq!(reqs.len(), 3);
        for q in reqs {
            // ...and no request loaded again.
            assert_eq!(q["reloaded"], false, "{q:#}");
            assert!(q["load_ms"].as_f64().unwrap() < 100.0, "{q:#}");
            assert!(q["ttft_ms"].as_u64().is_some());
            assert!(q["tokens_per_second"].as_f64().unwrap() > 0.0);
            assert!(q.get("error").is_none());
        }
        assert_eq!(j["summary"]["reloads"], 0);
        assert_eq!(j["summary"]["completed"], 3);
        assert_eq!(sim.reload_count(), 0);
        assert_eq!(sim.load_count(), 1);
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_counts_a_reload_caused_by_someone_else() {
    bounded(async {
        let sim = sim(demo()).await;
        // The model is loaded with another num_ctx than the profile's; bench's own warm-up then
        // reloads it once (counted by the sim) but its requests must stay warm.
        let home = Home::new();
        let url = sim.url();
        let r = home
            .run(&[
                "--url",
                &url,
                "--model",
                "llama3.2:3b",
                "doctor",
                "--load",
                "--num-ctx",
                // Not the server's default (4096 on the demo GPU).
                "2048",
            ])
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        let r = home
            .run(&["--url", &url, "bench", "--requests", "2", "--json"])
            .await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["summary"]["reloads"], 0);
        assert_eq!(sim.reload_count(), 1, "only the warm-up reloaded");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_changes_and_exits_0_on_sigterm() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        home.write_config("[watchdog]\ntick_ms = 250\n[alerts]\ncooldown_s = 0\n");
        let url = sim.url();
        let mut child = home
            .command(&["--url", &url, "watch", "--json", "--gpu-source", "sim"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen: Vec<Value> = Vec::new();
        let mut faulted = false;
        // Read until the incident is raised and resolved; each step is event-driven.
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("watch went quiet")
                .unwrap()
                .expect("watch ended early");
            let event: Value = serde_json::from_str(&line).unwrap();
            let is_gpu_snapshot = event["type"] == "snapshot" && event["verdict"]["kind"] == "gpu";
            let kind = event["type"].as_str().unwrap().to_owned();
            seen.push(event);
            if is_gpu_snapshot && !faulted {
                sim.fault(Fault::PsLiesGpu {
                    model: "llama3.2:3b".into(),
                });
                faulted = true;
            } else if kind == "alert_raised" {
                sim.clear_faults();
            } else if kind == "alert_resolved" {
                break;
            }
        }
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(serde_json::from_str(&line).unwrap());
        }
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(0));

        let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(types.contains(&"ollama_up"), "{types:?}");
        assert_eq!(types.iter().filter(|t| **t == "alert_raised").count(), 1);
        let raised = seen.iter().find(|e| e["type"] == "alert_raised").unwrap();
        let code = raised["code"].as_str().unwrap();
        assert!(
            code == "PS_CONTRADICTS_NVML" || code == "GPU_BACKEND_LOST",
            "{raised:#}"
        );
        // Snapshots only on change: never the same verdict + headline twice in a row.
        let snaps: Vec<(String, String)> = seen
            .iter()
            .filter(|e| e["type"] == "snapshot")
            .map(|e| (e["verdict"].to_string(), e["headline"].to_string()))
            .collect();
        assert!(snaps.len() >= 3, "{snaps:?}");
        for w in snaps.windows(2) {
            assert_ne!(w[0], w[1], "repeated snapshot");
        }
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_path_show_check() {
    bounded(async {
        let home = Home::new();
        let r = home.run(&["config", "path"]).await;
        assert_eq!(r.code, 0);
        assert_eq!(
            r.stdout.trim(),
            home.config_dir()
                .join("yollayah/config.toml")
                .to_str()
                .unwrap()
        );

        let valid = home.write_config("[model]\nname = \"qwen2.5:7b\"\nkeep_alive = \"10m\"\n");
        let r = home.run(&["config", "check"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("OK"));
        let r = home.run(&["config", "show"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("keep_alive = \"10m\""), "{}", r.stdout);
        assert!(r.stdout.contains("model = \"qwen2.5:7b\""), "{}", r.stdout);
        // The bundled persona pins no load-time option.
        assert!(!r.stdout.contains("num_ctx"), "{}", r.stdout);
        let r = home.run(&["--model", "other:1b", "config", "show"]).await;
        assert!(r.stdout.contains("model = \"other:1b\""), "{}", r.stdout);

        std::fs::write(&valid, "[model]\nname = \"x\"\nkeep_alive = \"300\"\n").unwrap();
        let r = home.run(&["config", "check"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(r.stderr.contains("keep_alive"), "{r:?}");
        assert!(r.stderr.contains(":3:"), "line 3 named: {r:?}");
        // Every command refuses a bad config the same way.
        let r = home.run(&["--url", &closed_url(), "status"]).await;
        assert_eq!(r.code, 8, "{r:?}");

        std::fs::write(&valid, "[ollama]\nurll = \"x\"\n").unwrap();
        let r = home.run(&["config", "check"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(r.stderr.contains("urll"), "{r:?}");

        // A broken persona file is caught too.
        let persona = home.dir.path().join("bad.md");
        std::fs::write(&persona, "+++\nname = 3\n+++\nhi\n").unwrap();
        let other = home.dir.path().join("other.toml");
        std::fs::write(
            &other,
            format!("[persona]\nfile = {:?}\n", persona.to_str().unwrap()),
        )
        .unwrap();
        let r = home
            .run(&["--config", other.to_str().unwrap(), "config", "check"])
            .await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(r.stderr.contains("bad.md"), "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn help_lists_commands_and_exit_codes() {
    bounded(async {
        let r = Home::new().run(&["--help"]).await;
        assert_eq!(r.code, 0);
        for word in [
            "doctor",
            "status",
            "warm",
            "unload",
            "chat",
            "history",
            "watch",
            "bench",
            "config",
            "Exit codes",
            "9  chat history unusable",
            "130",
        ] {
            assert!(r.stdout.contains(word), "{word} missing from --help");
        }
    })
    .await;
}

/// `GET path` over a plain HTTP/1.0 connection; the whole answer, or `None` when refused.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_serves_the_watchdog_and_refuses_to_open_up_without_tokens() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        home.write_config("[watchdog]\ntick_ms = 250\n");
        let url = sim.url();
        let r = home
            .run(&["--url", &url, "agent", "--listen", "0.0.0.0:0"])
            .await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(
            r.stderr
                .contains("refusing to listen on 0.0.0.0:0 without tokens"),
            "{r:?}"
        );

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = home
            .command(&[
                "--url",
                &url,
                "agent",
                "--listen",
                &listen,
                "--gpu-source",
                "sim",
            ])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut metrics = String::new();
        for _ in 0..100 {
            metrics = http_get(port, "/metrics").await.unwrap_or_default();
            if metrics
                .contains(r#"yollayah_model_placement{model="llama3.2:3b",placement="gpu"} 1"#)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(metrics.contains("ollama_up 1"), "{metrics}");
        assert!(
            metrics.contains(r#"placement="gpu"} 1"#),
            "the agent never reported the warmed model on the GPU:\n{metrics}"
        );
        let health = http_get(port, "/healthz").await.unwrap();
        assert!(health.starts_with("HTTP/1.0 200"), "{health}");
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("agent exits on SIGTERM")
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("serving http://{listen}")),
            "{stderr}"
        );
        sim.shutdown().await;
    })
    .await;
}
