//! `chat` with thinking and images, and `pull`, against the simulator (issue 13).

mod common;

use std::time::Duration;

use common::*;
use ollama_sim::{Fault, Scenario};
use serde_json::Value;

fn chat_bodies(sim: &ollama_sim::SimHandle) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn chat_prints_thinking_to_stderr_or_hides_it() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let base = [
            "--url",
            url.as_str(),
            "--model",
            "qwen3:8b",
            "chat",
            "--no-history",
        ];

        let run = home.run(&[&base[..], &["hi"]].concat()).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.starts_with("Hello!"), "{run:?}");
        assert!(
            !run.stdout.contains("The user said hello"),
            "trace not on stdout"
        );
        assert!(run.stderr.contains("The user said hello."), "{run:?}");
        assert!(
            !run.stderr.contains('\x1b'),
            "no ANSI when stderr is not a terminal"
        );
        assert!(run.stderr.contains("thought "), "{run:?}");
        assert!(chat_bodies(&sim)[0].get("think").is_none());

        let hidden = home
            .run(&[&base[..], &["--no-thinking", "hi"]].concat())
            .await;
        assert_eq!(hidden.code, 0, "{hidden:?}");
        assert!(!hidden.stderr.contains("The user said hello"), "{hidden:?}");

        let off = home
            .run(&[&base[..], &["--think", "off", "hi"]].concat())
            .await;
        assert_eq!(off.code, 0, "{off:?}");
        assert!(!off.stderr.contains("The user said hello"), "{off:?}");
        assert_eq!(chat_bodies(&sim).pop().expect("request")["think"], false);
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn chat_with_an_image() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        let img = home.dir.path().join("shot.png");
        let pixels = image::RgbImage::from_fn(30, 20, |x, y| image::Rgb([x as u8, y as u8, 9]));
        pixels.save(&img).expect("png");
        let img = img.to_string_lossy().into_owned();

        let run = home
            .run(&[
                "--url",
                &url,
                "--model",
                "gemma3:4b",
                "chat",
                "--no-history",
                "--image",
                &img,
                "what is this?",
            ])
            .await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.starts_with("I see 1 image."), "{run:?}");
        let body = chat_bodies(&sim).pop().expect("request");
        let user = body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .rfind(|m| m["role"] == "user")
            .cloned()
            .expect("user");
        let b64 = user["images"][0].as_str().expect("base64 image");
        assert!(b64.starts_with("/9j/"), "a re-encoded JPEG: {}", &b64[..8]);

        let refused = home
            .run(&[
                "--url",
                &url,
                "--model",
                "llama3.2:3b",
                "chat",
                "--no-history",
                "--image",
                &img,
                "what is this?",
            ])
            .await;
        assert_eq!(refused.code, 8, "{refused:?}");
        assert!(
            refused
                .stderr
                .contains("llama3.2:3b cannot see images; gemma3:4b can"),
            "{refused:?}"
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pull_succeeds_fails_in_ollamas_words_and_cancels() {
    bounded(async {
        let sim = sim(Scenario {
            pull_bytes_per_second: 4e9,
            ..demo()
        })
        .await;
        let home = Home::new();
        let url = sim.url();
        let run = home.run(&["--url", &url, "pull", "qwen3:0.6b"]).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.starts_with("pulled qwen3:0.6b ("), "{run:?}");
        assert!(run.stderr.contains("verifying sha256 digest"), "{run:?}");
        assert_eq!(sim.pulled_models(), ["qwen3:0.6b"]);

        let unknown = home.run(&["--url", &url, "pull", "nope:1b"]).await;
        assert_eq!(unknown.code, 8, "{unknown:?}");
        assert!(
            unknown
                .stderr
                .contains("pull model manifest: file does not exist"),
            "{unknown:?}"
        );
        sim.shutdown().await;

        let slow = common::sim(Scenario {
            pull_bytes_per_second: 5e7,
            ..demo()
        })
        .await;
        let url = slow.url();
        slow.fault(Fault::BrokenPull {
            after_percent: 2,
            message: None,
        });
        let broken = home.run(&["--url", &url, "pull", "qwen3:0.6b"]).await;
        assert_ne!(broken.code, 0);
        assert!(
            broken
                .stderr
                .contains("max retries exceeded: unexpected EOF"),
            "{broken:?}"
        );

        // Ctrl-C mid-download: exit 130, nothing installed.
        let child = home
            .command(&["--url", &url, "pull", "qwen3:0.6b"])
            .spawn()
            .expect("spawn");
        let pid = child.id().expect("pid");
        while slow
            .requests()
            .iter()
            .filter(|r| r.path == "/api/pull")
            .nth(1)
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("exits soon after Ctrl-C")
            .expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("pull of qwen3:0.6b cancelled"), "{stderr}");
        assert!(slow.pulled_models().is_empty());
        slow.shutdown().await;
    })
    .await;
}
