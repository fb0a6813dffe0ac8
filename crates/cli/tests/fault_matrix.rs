//! The fault matrix (docs/reliability.md) as the `yollayah` binary shows it: for each fault,
//! the exit code, the words on stderr, and what `yollayah history` still holds afterwards.
//! Each test runs the real binary against an in-process `ollama-sim` with a private home.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ollama_sim::Fault;
use serde_json::Value;

fn history(home: &Home) -> std::path::PathBuf {
    home.dir.path().join("data/yollayah/history.sqlite3")
}

fn chat_requests(sim: &ollama_sim::SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path == "/api/chat")
        .count()
}

async fn list(home: &Home) -> Vec<Value> {
    let r = home.run(&["history", "--json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    r.json().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_persona_or_config_is_exit_8_naming_the_file_and_sends_nothing() {
    bounded(async {
        let sim = sim(demo()).await;
        let url = sim.url();
        let home = Home::new();
        let dir = home.dir.path();
        let invalid = dir.join("invalid.md");
        std::fs::write(
            &invalid,
            "+++\nname = \"X\"\nmodel = \"m\"\n[options]\nnum_ctx = 8192\n+++\nhi\n",
        )
        .unwrap();
        let latin1 = dir.join("latin1.md");
        std::fs::write(
            &latin1,
            b"+++\nname = \"Jos\xe9\"\nmodel = \"m\"\n+++\nhi\n",
        )
        .unwrap();
        let missing = dir.join("missing.md");
        let cases = [
            (&missing, "missing.md"),
            (&invalid, "invalid.md:5:"),
            (&latin1, "UTF-8"),
        ];
        for (file, expect) in cases {
            home.write_config(&format!("[persona]\nfile = {:?}\n", file.to_str().unwrap()));
            let r = home.run(&["--url", &url, "chat", "hello"]).await;
            assert_eq!(r.code, 8, "{r:?}");
            assert!(r.stderr.starts_with("yollayah: persona "), "{r:?}");
            assert!(r.stderr.contains(expect), "expected {expect:?}: {r:?}");
        }
        home.write_config("[ollama]\nstream_idle_timeout_s = 0\n");
        let r = home.run(&["--url", &url, "chat", "hello"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(r.stderr.contains("config.toml:2:"), "{r:?}");
        assert!(r.stderr.contains("stream_idle_timeout_s"), "{r:?}");

        assert_eq!(chat_requests(&sim), 0, "nothing was sent");
        assert!(!history(&home).exists(), "no history was written");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_reply_is_exit_8_after_the_idle_timeout_and_is_kept() {
    bounded(async {
        let sim = sim(demo()).await;
        sim.set_reply("alpha beta gamma delta");
        sim.fault(Fault::StallMidStream { after_chunks: 2 });
        let home = Home::new();
        home.write_config("[ollama]\nstream_idle_timeout_s = 1\n");
        let started = std::time::Instant::now();
        let r = home.run(&["--url", &sim.url(), "chat", "letters"]).await;
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert_eq!(r.code, 8, "{r:?}");
        assert_eq!(r.stdout.trim(), "alpha beta", "the partial reply was shown");
        assert!(
            r.stderr
                .contains("[reply failed: the stream from Ollama stalled: no data for 1s]"),
            "{r:?}"
        );
        assert!(r.stderr.contains("[the partial reply is kept"), "{r:?}");
        let l = list(&home).await;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["messages"], 2, "question and partial answer");
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_error_status_is_exit_8_in_ollamas_words_and_keeps_the_question() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let url = sim.url();
        // The first request (`/api/version`) passes; the chat gets the 503.
        let r = home.run(&["--url", &url, "chat", "warm-up"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        let message = "server busy, please try again.  maximum pending requests exceeded";
        sim.fault(Fault::Status {
            status: 503,
            message: message.into(),
            count: None,
        });
        let r = home.run(&["--url", &url, "chat", "busy?"]).await;
        sim.clear_faults();
        // While every request gets 503, even the version check fails: Ollama answered,
        // so it is not "unreachable"; the message carries Ollama's text.
        assert_eq!(r.code, 8, "{r:?}");
        assert!(r.stderr.contains(message), "{r:?}");
        assert!(r.stderr.contains("503"), "{r:?}");

        // A 404 for the chat itself, from the real server: the question is kept.
        let r = home
            .run(&["--url", &url, "--model", "not-pulled:7b", "chat", "anyone?"])
            .await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(
            r.stderr.contains(
                "[reply failed: Ollama returned HTTP 404: model 'not-pulled:7b' not found]"
            ),
            "{r:?}"
        );
        let l = list(&home).await;
        assert_eq!(l[0]["title"], "anyone?");
        assert_eq!(l[0]["messages"], 2);
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_history_is_refused_untouched_before_anything_is_sent() {
    bounded(async {
        let sim = sim(demo()).await;
        let home = Home::new();
        let path = history(&home);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();

        let r = home.run(&["--url", &sim.url(), "chat", "hello"]).await;
        assert_eq!(r.code, 9, "{r:?}");
        assert!(
            r.stderr.contains("is damaged or not a SQLite database"),
            "{r:?}"
        );
        assert!(r.stderr.contains("move it aside"), "{r:?}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            garbage,
            "left byte-identical"
        );
        assert_eq!(chat_requests(&sim), 0, "nothing was sent");

        let r = home.run(&["history"]).await;
        assert_eq!(r.code, 9, "{r:?}");
        assert!(r.stderr.contains("damaged"), "{r:?}");
        sim.shutdown().await;
    })
    .await;
}
