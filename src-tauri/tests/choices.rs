//! The popup's choices survive a restart: the real core runs in-process against `ollama-sim`,
//! is driven through its socket with the chat window's own client (`wire::Client`), stops, and
//! a fresh core on the same history database (real SQLite in a temp dir) shows the same choice
//! and sends with it. A choice that no longer applies goes quietly: a host dropped from
//! `[[hosts]]`, a model the server no longer has (once the model list says so), a think value
//! the model no longer takes, and rows this version cannot read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yollayah_tray::wire::{Client, Command as Cmd};
use yollayah_tray::{
    Backend, ChatProcess, CoreOptions, GpuSource, Notice, Shell, Shown, UserFiles,
};

const WATCHED: &str = "llama3.2:3b";
const DEADLINE: Duration = Duration::from_secs(30);

/// A notification daemon that shows nothing (a system edge; not what this test is about).
struct Quiet;

impl Backend for Quiet {
    fn capabilities(&mut self) -> yollayah_tray::Result<Vec<String>> {
        Ok(vec!["body".into()])
    }

    fn show(&mut self, _: &Notice, _: Option<u32>, _: bool) -> yollayah_tray::Result<Shown> {
        Ok(Shown { id: 1, wait: None })
    }
}

/// One run of the tray: its core, and the chat window's connection to it.
struct Run {
    shell: Arc<Shell>,
    client: Client,
}

impl Run {
    /// Starts a tray on `sim` with the history database `db`, reading `config` (a
    /// `config.toml` text; `None`: the built-in config). `n` keeps each run's socket apart.
    async fn start(dir: &Path, n: u32, sim: &ollama_sim::SimHandle, config: Option<&str>) -> Run {
        let config_path = config.map(|text| {
            let path = dir.join(format!("config-{n}.toml"));
            std::fs::write(&path, text).expect("config");
            path
        });
        let options = CoreOptions {
            ollama_url: Some(sim.url()),
            gpu: GpuSource::Simulator,
            builtin_config: config_path.is_none(),
            config_path,
            history_path: Some(Some(db(dir))),
            tick: Some(Duration::from_millis(200)),
            warm_on_start: Some(false),
            files: Some(UserFiles::under(dir)),
            ..CoreOptions::default()
        };
        let socket = dir.join(format!("core-{n}.sock"));
        let chat = ChatProcess::new("/bin/false".into(), socket.clone());
        let shell = yollayah_tray::start(options, Quiet, &socket, chat).expect("core starts");
        let (client, _heard) = Client::connect(&socket).await.expect("connects");
        Run { shell, client }
    }

    async fn call(&self, command: Cmd) -> Value {
        let what = format!("{command:?}");
        self.client
            .call(command)
            .await
            .unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
    }

    async fn choice(&self) -> Value {
        self.call(Cmd::ChatChoice).await
    }

    /// Quits, as the tray's Quit does: the core and its watchdog stop.
    fn quit(self) {
        self.shell.quit();
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("history.sqlite3")
}

async fn sim(scenario: ollama_sim::Scenario) -> ollama_sim::SimHandle {
    ollama_sim::start(ollama_sim::Scenario {
        load_ms: 50,
        ..scenario
    })
    .await
    .expect("simulator")
}

fn set_think(model: &str, think: &str) -> Cmd {
    Cmd::SetThink {
        model: model.into(),
        think: Some(think.into()),
    }
}

/// The last `/api/chat` body `sim` got, once a reply to it is done.
async fn send_and_read_body(run: &Run, sim: &ollama_sim::SimHandle) -> Value {
    let before = sim.requests().len();
    run.call(Cmd::SendMessage {
        conversation: None,
        text: "hi".into(),
        images: Vec::new(),
    })
    .await;
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(r) = sim.requests()[before..]
            .iter()
            .rev()
            .find(|r| r.path == "/api/chat")
        {
            return r.body.clone();
        }
        assert!(Instant::now() < end, "no chat request reached the server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_choice_is_the_same_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server = sim(ollama_sim::Scenario::default()).await;

    let first = Run::start(d, 1, &server, None).await;
    let c = first.choice().await;
    assert_eq!(
        (&c["model"], &c["chosen"]),
        (&json!(WATCHED), &json!(false))
    );
    first
        .call(Cmd::ChooseModel {
            model: Some("qwen3:8b".into()),
        })
        .await;
    first.call(set_think("qwen3:8b", "off")).await;
    let c = first.call(set_think("gpt-oss:20b", "high")).await;
    assert_eq!(
        c["think"],
        json!({"qwen3:8b": false, "gpt-oss:20b": "high"})
    );
    first.quit();

    // A fresh core on the same database: the choice is back before any model list.
    let second = Run::start(d, 2, &server, None).await;
    let c = second.choice().await;
    assert_eq!(
        (&c["model"], &c["chosen"], &c["watched"]),
        (&json!("qwen3:8b"), &json!(true), &json!(WATCHED)),
        "{c}"
    );
    assert_eq!(
        c["think"],
        json!({"qwen3:8b": false, "gpt-oss:20b": "high"})
    );
    assert_eq!(c["note"], Value::Null);
    // ...and the chat is sent with it.
    let body = send_and_read_body(&second, &server).await;
    assert_eq!(
        (&body["model"], &body["think"]),
        (&json!("qwen3:8b"), &json!(false)),
        "{body}"
    );

    // Undoing is kept as well: back to the watched model, gpt-oss to the server's default.
    second.call(Cmd::ChooseModel { model: None }).await;
    second
        .call(Cmd::SetThink {
            model: "gpt-oss:20b".into(),
            think: None,
        })
        .await;
    second.quit();
    let third = Run::start(d, 3, &server, None).await;
    let c = third.choice().await;
    assert_eq!(
        (&c["model"], &c["chosen"]),
        (&json!(WATCHED), &json!(false)),
        "{c}"
    );
    assert_eq!(c["think"], json!({"qwen3:8b": false}));
    // "Watch this one" is not among what is kept.
    assert_eq!(c["watch_persists"], false);
    third.quit();
}

/// A server that has only the watched model (qwen3:8b and gpt-oss were removed).
fn only_the_watched_model() -> ollama_sim::Scenario {
    ollama_sim::Scenario::from_toml_str(
        r#"
[[gpus]]
name = "NVIDIA GeForce RTX 4070"
memory_total = 12878610432

[[models]]
name = "llama3.2:3b"
file_size = 2019377376
arch = "llama"
family = "llama"
block_count = 28
context_length = 131072
embedding_length = 3072
head_count = 24
head_count_kv = 8
key_length = 128
value_length = 128
capabilities = ["completion", "tools"]
"#,
    )
    .expect("scenario")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chosen_model_that_is_gone_falls_back_to_the_watched_one_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let before = sim(ollama_sim::Scenario::default()).await;
    let first = Run::start(d, 1, &before, None).await;
    first
        .call(Cmd::ChooseModel {
            model: Some("qwen3:8b".into()),
        })
        .await;
    first.call(set_think("qwen3:8b", "off")).await;
    first.quit();
    // Between runs: a think value for a model that (in this build) cannot think, and rows
    // this version cannot read. None of them may stop the start.
    {
        let conn = rusqlite::Connection::open(db(d)).expect("db");
        conn.execute_batch(
            "INSERT INTO settings VALUES ('picker.think.llama3.2:3b', 'on');
             INSERT INTO settings VALUES ('picker.think.gemma3:4b', 'sometimes');
             INSERT INTO settings VALUES ('picker.colour', 'teal');
             INSERT INTO settings VALUES ('picker.host', X'00FF');",
        )
        .expect("rows");
    }

    // The server now has only the watched model.
    let after = sim(only_the_watched_model()).await;
    let second = Run::start(d, 2, &after, None).await;
    let c = second.choice().await;
    // Kept until the model list says it is gone (the server may just be starting).
    assert_eq!(
        (&c["model"], &c["chosen"]),
        (&json!("qwen3:8b"), &json!(true)),
        "{c}"
    );
    assert_eq!(c["host"], Value::Null, "an unreadable host is ignored: {c}");
    let rows = second.call(Cmd::ListModels).await;
    let names: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, [WATCHED]);
    let c = second.choice().await;
    assert_eq!(
        (&c["model"], &c["chosen"]),
        (&json!(WATCHED), &json!(false)),
        "{c}"
    );
    let note = c["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("qwen3:8b") && note.contains(WATCHED),
        "the picker says why: {c}"
    );
    // llama3.2 does not think: its stored value went; qwen3's is kept (it may come back).
    assert_eq!(c["think"], json!({"qwen3:8b": false}), "{c}");
    // Said once.
    assert_eq!(second.choice().await["note"], Value::Null);
    let body = send_and_read_body(&second, &after).await;
    assert_eq!(body["model"], WATCHED, "{body}");
    assert!(body.get("think").is_none(), "{body}");
    second.quit();

    // The fallback was written back: the next start does not bring qwen3:8b back.
    let third = Run::start(d, 3, &after, None).await;
    let c = third.choice().await;
    assert_eq!(
        (&c["model"], &c["chosen"]),
        (&json!(WATCHED), &json!(false)),
        "{c}"
    );
    third.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_dropped_from_the_config_is_dropped_from_the_choice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let local = sim(ollama_sim::Scenario::default()).await;
    let closet = sim(ollama_sim::Scenario::default()).await;
    let with_host = format!(
        "[watchdog]\nrewarm = false\n\n[[hosts]]\nname = \"closet\"\nurl = \"{}\"\n",
        closet.url()
    );
    let first = Run::start(d, 1, &local, Some(&with_host)).await;
    first
        .call(Cmd::ChooseHost {
            host: Some("closet".into()),
        })
        .await;
    let c = first
        .call(Cmd::ChooseModel {
            model: Some("qwen3:8b".into()),
        })
        .await;
    assert_eq!(
        (&c["host"], &c["model"]),
        (&json!("closet"), &json!("qwen3:8b"))
    );
    first.quit();

    // Same config: the host and its model are back, and the chat goes there.
    let second = Run::start(d, 2, &local, Some(&with_host)).await;
    let c = second.choice().await;
    assert_eq!(
        (&c["host"], &c["model"]),
        (&json!("closet"), &json!("qwen3:8b")),
        "{c}"
    );
    let body = send_and_read_body(&second, &closet).await;
    assert_eq!(body["model"], "qwen3:8b");
    second.quit();

    // The host is gone from the config: this machine, the watched model.
    let third = Run::start(d, 3, &local, Some("[watchdog]\nrewarm = false\n")).await;
    let c = third.choice().await;
    assert_eq!(
        (&c["host"], &c["model"], &c["chosen"]),
        (&Value::Null, &json!(WATCHED), &json!(false)),
        "{c}"
    );
    third.quit();
    // ...and stays gone when the host comes back to the config (the drop was written).
    let fourth = Run::start(d, 4, &local, Some(&with_host)).await;
    assert_eq!(fourth.choice().await["host"], Value::Null);
    fourth.quit();
}
