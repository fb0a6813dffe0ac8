//! Thinking, images and pulls over real loopback HTTP (issue 13).

mod common;

use common::*;
use ollama_sim::Fault;
use serde_json::{Value, json};

fn texts(lines: &[Value], field: &str) -> String {
    lines
        .iter()
        .filter_map(|l| l["message"][field].as_str())
        .collect()
}

#[tokio::test]
async fn thinking_streams_before_content_and_obeys_think() {
    bounded(async {
        let sim = sim(fast()).await;
        let hi = json!([{"role":"user","content":"hi"}]);
        let lines = ndjson(&sim, "/api/chat", json!({"model":"qwen3:8b","messages":hi})).await;
        let first_content = lines
            .iter()
            .position(|l| {
                l["message"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            })
            .expect("content");
        let last_thinking = lines
            .iter()
            .rposition(|l| l["message"]["thinking"].is_string())
            .expect("thinking streamed by default");
        assert!(last_thinking < first_content);
        assert!(texts(&lines, "thinking").starts_with("The user said hello."));
        assert!(lines.last().expect("done")["done"].as_bool().expect("bool"));

        let off = ndjson(
            &sim,
            "/api/chat",
            json!({"model":"qwen3:8b","messages":hi,"think":false}),
        )
        .await;
        assert!(texts(&off, "thinking").is_empty());

        // gpt-oss cannot stop thinking; a level shortens or lengthens the trace.
        let oss = ndjson(
            &sim,
            "/api/chat",
            json!({"model":"gpt-oss:20b","messages":hi,"think":false}),
        )
        .await;
        assert!(!texts(&oss, "thinking").is_empty());
        let low = ndjson(
            &sim,
            "/api/chat",
            json!({"model":"qwen3:8b","messages":hi,"think":"low"}),
        )
        .await;
        assert!(texts(&low, "thinking").len() < texts(&lines, "thinking").len());

        let r = post(
            &sim,
            "/api/chat",
            json!({"model":"llama3.2:3b","messages":hi,"think":true}),
        )
        .await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(r).await["error"],
            "\"llama3.2:3b\" does not support thinking"
        );

        // Non-streamed: the trace is concatenated like the content.
        let whole = json_of(
            post(
                &sim,
                "/api/chat",
                json!({"model":"qwen3:8b","messages":hi,"stream":false}),
            )
            .await,
        )
        .await;
        assert_eq!(
            whole["message"]["thinking"].as_str(),
            Some(texts(&lines, "thinking").as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn images_on_vision_and_other_models() {
    bounded(async {
        let sim = sim(fast()).await;
        let msgs = json!([{"role":"user","content":"what is this?","images":["aGk=","aGk="]}]);
        let lines = ndjson(
            &sim,
            "/api/chat",
            json!({"model":"gemma3:4b","messages":msgs}),
        )
        .await;
        assert!(texts(&lines, "content").starts_with("I see 2 images. "));

        let r = post(
            &sim,
            "/api/chat",
            json!({"model":"llama3.2:3b","messages":msgs}),
        )
        .await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(r).await["error"],
            "this model is missing data required for image input"
        );
        let bad = json!([{"role":"user","content":"x","images":["not base64!"]}]);
        let r = post(
            &sim,
            "/api/chat",
            json!({"model":"gemma3:4b","messages":bad}),
        )
        .await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            json_of(r).await["error"],
            "illegal base64 data at input byte 3"
        );
    })
    .await;
}

#[tokio::test]
async fn pull_progress_success_and_faults() {
    bounded(async {
        let sim = sim(ollama_sim::Scenario {
            pull_bytes_per_second: 4e9,
            ..fast()
        })
        .await;
        let lines = ndjson(&sim, "/api/pull", json!({"model":"qwen3:0.6b"})).await;
        assert_eq!(lines[0], json!({"status":"pulling manifest"}));
        let weights: Vec<&Value> = lines
            .iter()
            .filter(|l| l["total"].as_u64() == Some(522_653_767))
            .collect();
        assert!(weights.len() >= 3, "several progress lines: {lines:?}");
        let digest = weights[0]["digest"].as_str().expect("digest");
        assert!(digest.starts_with("sha256:") && digest.len() == 71);
        assert_eq!(
            weights[0]["status"].as_str().expect("status"),
            format!("pulling {}", &digest[7..19])
        );
        let completed: Vec<u64> = weights
            .iter()
            .map(|l| l["completed"].as_u64().expect("completed"))
            .collect();
        assert!(completed.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(completed.last(), Some(&522_653_767));
        let tail: Vec<&str> = lines[lines.len() - 3..]
            .iter()
            .map(|l| l["status"].as_str().expect("status"))
            .collect();
        assert_eq!(
            tail,
            ["verifying sha256 digest", "writing manifest", "success"]
        );
        assert_eq!(sim.pulled_models(), ["qwen3:0.6b"]);
        let tags = json_of(get(&sim, "/api/tags").await).await;
        assert!(
            tags["models"]
                .as_array()
                .expect("models")
                .iter()
                .any(|m| m["name"] == "qwen3:0.6b")
        );

        let unknown = ndjson(&sim, "/api/pull", json!({"model":"nope:1b"})).await;
        assert_eq!(
            unknown,
            [
                json!({"status":"pulling manifest"}),
                json!({"error":"pull model manifest: file does not exist"})
            ]
        );

        let sim2 = common::sim(ollama_sim::Scenario {
            pull_bytes_per_second: 4e9,
            ..fast()
        })
        .await;
        sim2.fault(Fault::BrokenPull {
            after_percent: 40,
            message: None,
        });
        let broken = ndjson(&sim2, "/api/pull", json!({"model":"qwen3:0.6b"})).await;
        assert_eq!(
            broken.last().expect("last")["error"],
            "max retries exceeded: unexpected EOF"
        );
        assert!(sim2.pulled_models().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_pull_whose_client_goes_away_stops_and_is_counted_abandoned() {
    bounded(async {
        // ~520 MB at 20 MB/s: about 26 s, far longer than the test waits.
        let sim = sim(ollama_sim::Scenario {
            pull_bytes_per_second: 20e6,
            ..fast()
        })
        .await;
        let mut r = post(&sim, "/api/pull", json!({"model":"qwen3:0.6b"})).await;
        let mut seen = 0;
        while seen < 3 {
            let chunk = r.chunk().await.expect("read").expect("more progress");
            seen += chunk.iter().filter(|b| **b == b'\n').count();
        }
        assert_eq!(sim.pull_counts().active, 1);
        drop(r);
        // The job notices at its next line (every 60 ms).
        let mut counts = sim.pull_counts();
        for _ in 0..100 {
            if counts.active == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            counts = sim.pull_counts();
        }
        assert_eq!(
            counts,
            ollama_sim::PullCounts {
                abandoned: 1,
                ..Default::default()
            }
        );
        assert!(sim.pulled_models().is_empty(), "no model from a cancel");
        let stats = json_of(get(&sim, "/__sim/stats").await).await;
        assert_eq!(stats["pulls"]["abandoned"], 1);

        // Outcomes are counted apart.
        let _ = ndjson(&sim, "/api/pull", json!({"model":"nope:1b"})).await;
        let _ = ndjson(&sim, "/api/pull", json!({"model":"llama3.2:3b"})).await;
        let counts = sim.pull_counts();
        assert_eq!((counts.failed, counts.completed), (1, 1), "{counts:?}");
    })
    .await;
}
