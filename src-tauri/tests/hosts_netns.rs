//! The tray's half of the remote test, across a network namespace the test makes: the Ollama
//! simulator, its watchdog and a real `yollayah agent` server (with read and write token files)
//! run inside it, on an address that is not this machine's; the tray's host follower runs here,
//! in-process, over the real network path (veth), as on a desktop following a GPU server.
//!
//! - A host without an agent reads "unverified (no agent)", even when `/api/ps` claims GPU.
//! - Through the agent the line is the agent's verdict: nothing loaded until the tray's "Warm"
//!   for that host (a `POST /api/v1/warm` with the write token: the simulator counts the load),
//!   then GPU; a CPU fallback staged in the simulator (hidden from `/api/ps`) turns the line and
//!   the icon to CPU, and the alert's notice names the host.
//! - A wrong token and a missing one: 401, and the menu line says which file or key to fix; the
//!   read token's "Warm" is a 403 naming its file, and loads nothing.
//!
//! Needs root and iproute2; without them it prints why and skips (CI runs as root).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use yollayah_core::config::Config;
use yollayah_core::machine::Machine;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::persona::Persona;
use yollayah_core::profile::ModelProfile;
use yollayah_core::watchdog::{self, WatchdogSettings};
use yollayah_testkit::netns::NetNs;
use yollayah_tray::{AppCommand, LINE_MAX, TrayState, dispatch};

mod common;
use common::{DEADLINE, secret_file, until_line};

const MODEL: &str = "llama3.2:3b";
const READ: &str = "read-0123456789abcdef0123456789abcdef";
const WRITE: &str = "write-0123456789abcdef0123456789abcdef";
const WRONG: &str = "wrong-0123456789abcdef0123456789abcdef";
/// Set (to the namespace's address) when the entry point below should serve.
const LISTEN_ENV: &str = "YOLLAYAH_TEST_NS_REMOTE";
/// The directory holding the agent's `read` and `write` token files.
const TOKENS_ENV: &str = "YOLLAYAH_TEST_NS_TOKENS";
const ENTRY: &str = "netns_remote_entry";
const SIM_PORT: u16 = 11434;
const AGENT_PORT: u16 = 9811;

/// Not a test: the remote host inside the namespace. The outer test re-runs this binary there
/// with [`LISTEN_ENV`] set; it serves the simulator and the agent until its stdin closes.
#[test]
#[ignore = "entry point of the remote host inside a network namespace"]
fn netns_remote_entry() {
    let (Ok(addr), Ok(tokens)) = (std::env::var(LISTEN_ENV), std::env::var(TOKENS_ENV)) else {
        return;
    };
    let ip: std::net::IpAddr = addr.parse().expect("namespace address");
    let tokens = PathBuf::from(tokens);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        yollayah_core::ollama::client::ensure_crypto_provider();
        let scenario = ollama_sim::Scenario {
            load_ms: 300,
            ..ollama_sim::Scenario::default()
        };
        let sim = ollama_sim::start_on(scenario, (ip, SIM_PORT).into())
            .await
            .expect("sim");
        let cancel = CancellationToken::new();
        let client = OllamaClient::new(ClientConfig {
            load_timeout: Duration::from_secs(20),
            ..ClientConfig::new(sim.url())
        })
        .expect("client");
        let profile = ModelProfile::resolve(
            &Config::default(),
            &Persona::bundled().expect("bundled persona"),
        );
        // No warm at start and no re-warm: the only load is the tray's "Warm".
        let wd = watchdog::spawn(
            client,
            Machine::simulator(&sim.url()).expect("sim machine"),
            profile,
            OllamaEnv::default(),
            WatchdogSettings {
                tick: Duration::from_millis(300),
                warm_on_start: false,
                rewarm: false,
                ..WatchdogSettings::default()
            },
            cancel.clone(),
        );
        let mut config = yollayah_agent::AgentConfig::local(AGENT_PORT);
        config.listen = (ip, AGENT_PORT).into();
        config.read_token_file = Some(tokens.join("read"));
        config.write_token_file = Some(tokens.join("write"));
        let agent = yollayah_agent::start(config, wd, cancel.clone())
            .await
            .expect("agent starts");
        println!("LISTENING {} {}", sim.url(), agent.url());
        std::io::stdout().flush().expect("flush");
        // The outer test closes stdin (or dies) when it is done with us.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        cancel.cancel();
        sim.shutdown().await;
    });
}

/// The remote host (simulator + agent) inside the namespace; stopped on drop, before the
/// namespace goes.
struct Remote {
    child: Child,
    sim: String,
    agent: String,
}

impl Remote {
    fn start(ns: &NetNs, tokens: &Path) -> Remote {
        let mut child = ns
            .self_command(ENTRY)
            .expect("test binary")
            .env(LISTEN_ENV, ns.inside_addr().to_string())
            .env(TOKENS_ENV, tokens)
            .env_remove("OLLAMA_HOST")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the remote host");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test NAME ... " on the same line first.
                if let Some((_, urls)) = line.split_once("LISTENING ") {
                    let _ = tx.send(urls.trim().to_owned());
                }
            }
        });
        let urls = rx
            .recv_timeout(DEADLINE)
            .expect("the remote host inside the namespace did not start");
        let (sim, agent) = urls.split_once(' ').expect("two URLs");
        Remote {
            child,
            sim: sim.to_owned(),
            agent: agent.to_owned(),
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// How many loads the remote simulator has done (its control API, across the veth).
async fn loads(sim: &str) -> u64 {
    let v: serde_json::Value = http()
        .get(format!("{sim}/__sim/stats"))
        .send()
        .await
        .expect("sim stats")
        .json()
        .await
        .expect("stats json");
    v["load_count"].as_u64().expect("load_count")
}

async fn sim_post(sim: &str, path: &str, body: &str) {
    let r = http()
        .post(format!("{sim}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("sim control");
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tray_follows_a_remote_host_across_a_network_namespace() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    yollayah_core::ollama::client::ensure_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let agent_tokens = d.join("agent");
    std::fs::create_dir(&agent_tokens).expect("agent dir");
    secret_file(&agent_tokens, "read", READ);
    secret_file(&agent_tokens, "write", WRITE);
    let remote = Remote::start(&ns, &agent_tokens);
    let inside = ns.inside_addr().to_string();
    assert!(
        remote.sim.contains(&inside) && remote.agent.contains(&inside),
        "{} {}",
        remote.sim,
        remote.agent
    );

    let local = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("local sim");
    let write = secret_file(d, "gpu.token", WRITE);
    let read = secret_file(d, "viewer.token", READ);
    let wrong = secret_file(d, "wrong.token", WRONG);
    let host = |name: &str, token: Option<&Path>| {
        let mut h = format!(
            "[[hosts]]\nname = \"{name}\"\nurl = \"{}\"\nagent_url = \"{}\"\n",
            remote.sim, remote.agent
        );
        if let Some(t) = token {
            h += &format!("token_file = \"{}\"\n", t.display());
        }
        h
    };
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[hosts]]\nname = \"bare\"\nurl = \"{}\"\n\n{}\n{}\n{}\n{}",
            remote.sim,
            host("gpu", Some(&write)),
            host("viewer", Some(&read)),
            host("wrong", Some(&wrong)),
            host("none", None),
        ),
    )
    .expect("config");
    let (shell, notices) =
        common::start_following(d, local.url(), config, Duration::from_millis(300));
    assert!(shell.core.problems.is_empty(), "{:?}", shell.core.problems);
    let names: Vec<String> = shell.view().hosts.iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["bare", "gpu", "viewer", "wrong", "none"]);
    let index = |name: &str| names.iter().position(|n| n == name).expect("host index");

    // (a) No agent: the placement is never claimed.
    let l = until_line(&shell, "bare", |l| l.line.contains("unverified (no agent)")).await;
    assert_eq!(l.line, "bare: unverified (no agent) · nothing loaded");
    assert_eq!(l.state, TrayState::Unknown);
    assert!(!l.agent);
    assert!(
        l.detail.as_deref().is_some_and(|d| d.contains("agent_url")),
        "{l:?}"
    );

    // (c) Tokens: a wrong one and none are 401s, and the line says what to fix.
    let l = until_line(&shell, "wrong", |l| l.line.contains("401")).await;
    assert_eq!(l.line, "wrong: token refused (401), check wrong.token");
    assert_eq!(l.state, TrayState::Unknown);
    let detail = l.detail.expect("detail");
    assert!(
        detail.contains(&wrong.display().to_string()) && detail.contains(&remote.agent),
        "{detail}"
    );
    let l = until_line(&shell, "none", |l| l.line.contains("401")).await;
    assert_eq!(l.line, "none: token required (401), set token_file");
    assert!(
        l.detail.as_deref().is_some_and(|d| d.contains("[[hosts]]")),
        "{l:?}"
    );

    // (b) Through the agent: its verdict, before and after a warm.
    let l = until_line(&shell, "gpu", |l| {
        !l.line.contains("waiting for the first reading")
    })
    .await;
    assert!(l.agent && l.line.starts_with("gpu: "), "{l:?}");
    assert!(!l.line.contains("not reachable"), "{l:?}");
    // The agent's verdict for a model nothing loaded yet (not loaded: no icon claim).
    assert_eq!(l.state, TrayState::Unknown, "{l:?}");
    assert_eq!(loads(&remote.sim).await, 0);

    // The read token cannot warm: a 403 naming its file, and nothing is loaded.
    dispatch(&shell, AppCommand::WarmHost(index("viewer")));
    let refused = notices
        .until("viewer's refused warm", |n| {
            n.summary == "viewer: warm failed"
        })
        .await;
    assert!(
        refused.body.contains("403") && refused.body.contains(&read.display().to_string()),
        "{}",
        refused.body
    );
    let l = until_line(&shell, "viewer", |l| l.line.contains("403")).await;
    assert_eq!(
        l.line,
        "viewer: warm failed: viewer.token is the read token (403)"
    );
    assert_eq!(
        loads(&remote.sim).await,
        0,
        "a refused warm loaded the model"
    );

    // The write token warms through the agent: one load, then the agent's GPU verdict.
    dispatch(&shell, AppCommand::WarmHost(index("gpu")));
    let l = until_line(&shell, "gpu", |l| l.state == TrayState::Gpu).await;
    assert!(
        l.line.contains(MODEL) && l.line.chars().count() <= LINE_MAX,
        "{l:?}"
    );
    assert_eq!(loads(&remote.sim).await, 1);

    // A CPU fallback that /api/ps hides: the agent sees it, the icon follows, the alert names
    // the host; the bare host, reading /api/ps, still cannot tell and says so.
    sim_post(
        &remote.sim,
        "/__sim/fault",
        &format!(r#"{{"kind":"ps_lies_gpu","model":"{MODEL}"}}"#),
    )
    .await;
    until_line(&shell, "gpu", |l| l.state == TrayState::Cpu).await;
    assert_eq!(shell.view().icon_state(), TrayState::Cpu);
    let alert = notices
        .until("an alert naming the host", |n| {
            n.summary.starts_with("gpu: ")
        })
        .await;
    assert!(alert.summary.contains(MODEL), "{alert:?}");
    let l = until_line(&shell, "bare", |l| l.line.contains("ps: ")).await;
    assert_eq!(l.state, TrayState::Unknown);
    assert!(
        l.line.starts_with("bare: unverified (no agent) · ps: "),
        "{l:?}"
    );

    shell.quit();
    drop(remote);
}
