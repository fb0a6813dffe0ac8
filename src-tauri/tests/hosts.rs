//! The tray follows `[[hosts]]`: the real core runs in-process against one `ollama-sim` (the
//! local server) and a real `yollayah agent` server (the agent crate, in-process) watches a
//! second simulator (the remote host). The host with an agent shows the agent's verdict, warms
//! through it and alerts with the host's name for a staged CPU fallback that `/api/ps` hides;
//! a host without an agent reads "unverified (no agent)"; a wrong token shows the agent
//! client's 401 message in that host's line, and a warm with a read-only token its 403.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use yollayah_core::config::Config;
use yollayah_core::machine::Machine;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::persona::Persona;
use yollayah_core::profile::ModelProfile;
use yollayah_core::watchdog::{self, WatchdogSettings};
use yollayah_tray::{
    AppCommand, ChatProcess, CoreOptions, GpuSource, LINE_MAX, TrayState, UserFiles, dispatch,
};

mod common;
use common::{DEADLINE, Recorder, line, secret_file, until_line};

const MODEL: &str = "llama3.2:3b";
const READ: &str = "read-0123456789abcdef0123456789abcdef";
const WRITE: &str = "write-0123456789abcdef0123456789abcdef";

fn post(url: &str, path: &str, body: &str) {
    let out = std::process::Command::new("curl")
        .args(["-sf", "--noproxy", "*", "-X", "POST", "-H"])
        .arg("content-type: application/json")
        .args(["-d", body, &format!("{url}{path}")])
        .output()
        .expect("curl");
    assert!(out.status.success(), "POST {path}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tray_follows_hosts_through_their_agents() {
    yollayah_core::ollama::client::ensure_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // The remote host: a simulator, its watchdog, and the agent serving it.
    let remote = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("remote sim");
    let cancel = CancellationToken::new();
    let client = OllamaClient::new(ClientConfig {
        load_timeout: Duration::from_secs(20),
        ..ClientConfig::new(remote.url())
    })
    .expect("client");
    let profile = ModelProfile::resolve(
        &Config::default(),
        &Persona::bundled().expect("bundled persona"),
    );
    let remote_watchdog = watchdog::spawn(
        client,
        Machine::simulator(&remote.url()).expect("sim machine"),
        profile,
        OllamaEnv::default(),
        WatchdogSettings {
            tick: Duration::from_millis(300),
            warm_on_start: false,
            ..WatchdogSettings::default()
        },
        cancel.clone(),
    );
    let agent_dir = d.join("agent");
    std::fs::create_dir(&agent_dir).expect("agent dir");
    let mut agent_config = yollayah_agent::AgentConfig::local(0);
    agent_config.read_token_file = Some(secret_file(&agent_dir, "read", READ));
    agent_config.write_token_file = Some(secret_file(&agent_dir, "write", WRITE));
    let agent = yollayah_agent::start(agent_config, remote_watchdog, cancel.clone())
        .await
        .expect("agent starts");
    let agent_url = agent.url();

    // A bare host (no agent) and the local server.
    let bare = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("bare sim");
    let local = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("local sim");

    let write = secret_file(d, "gpu.token", WRITE);
    let read = secret_file(d, "viewer.token", READ);
    let wrong = secret_file(d, "wrong.token", "wrong-0123456789abcdef0123456789abcdef");
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[hosts]]
name = "gpu"
url = "{remote}"
agent_url = "{agent_url}"
token_file = "{write}"

[[hosts]]
name = "bare"
url = "{bare}"

[[hosts]]
name = "badtoken"
url = "{remote}"
agent_url = "{agent_url}"
token_file = "{wrong}"

[[hosts]]
name = "viewer"
url = "{remote}"
agent_url = "{agent_url}"
token_file = "{read}"
"#,
            remote = remote.url(),
            bare = bare.url(),
            write = write.display(),
            wrong = wrong.display(),
            read = read.display(),
        ),
    )
    .expect("config");

    let (shell, notices) =
        common::start_following(d, local.url(), config, Duration::from_millis(300));
    assert!(shell.core.problems.is_empty(), "{:?}", shell.core.problems);
    let names: Vec<String> = shell.view().hosts.iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["gpu", "bare", "badtoken", "viewer"]);

    // Without an agent the placement is never claimed.
    let l = until_line(&shell, "bare", |l| l.line.contains("unverified (no agent)")).await;
    assert_eq!(l.state, TrayState::Unknown);
    assert!(!l.agent);

    // A wrong token: the 401 in the line, the file to fix in the detail.
    let l = until_line(&shell, "badtoken", |l| l.line.contains("401")).await;
    assert_eq!(l.line, "badtoken: token refused (401), check wrong.token");
    let detail = l.detail.expect("detail");
    assert!(detail.contains(&wrong.display().to_string()), "{detail}");

    // Warm through the agent: the agent's verdict arrives on its event stream.
    dispatch(&shell, AppCommand::WarmHost(0));
    let l = until_line(&shell, "gpu", |l| l.state == TrayState::Gpu).await;
    assert!(
        l.line.starts_with("gpu: ") && l.line.contains(MODEL),
        "{l:?}"
    );
    assert!(l.line.chars().count() <= LINE_MAX);

    // A read-only token cannot warm: the agent client's 403 message in a notice.
    dispatch(&shell, AppCommand::WarmHost(3));
    let end = tokio::time::Instant::now() + DEADLINE;
    let refused = loop {
        if let Some(n) = notices.find(|n| n.summary == "viewer: warm failed") {
            break n;
        }
        assert!(tokio::time::Instant::now() < end, "no warm refusal notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused.body.contains("403"), "{}", refused.body);
    assert!(
        refused.body.contains(&read.display().to_string()),
        "{}",
        refused.body
    );

    // A CPU fallback that /api/ps hides: the agent sees it; the alert names the host and the
    // icon shows the worst state.
    post(
        &remote.url(),
        "/__sim/fault",
        &format!(r#"{{"kind":"ps_lies_gpu","model":"{MODEL}"}}"#),
    );
    until_line(&shell, "gpu", |l| l.state == TrayState::Cpu).await;
    assert_eq!(shell.view().icon_state(), TrayState::Cpu);
    let end = tokio::time::Instant::now() + DEADLINE;
    let alert = loop {
        if let Some(n) = notices.find(|n| n.summary.starts_with("gpu: ")) {
            break n;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no alert naming the host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(alert.summary.contains(MODEL), "{alert:?}");
    // The bare host still cannot tell.
    assert_eq!(line(&shell, "bare").state, TrayState::Unknown);

    shell.quit();
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_hosts_nothing_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("sim");
    let options = CoreOptions {
        ollama_url: Some(local.url()),
        gpu: GpuSource::Simulator,
        builtin_config: true,
        warm_on_start: Some(false),
        files: Some(UserFiles::under(dir.path())),
        ..CoreOptions::default()
    };
    let socket = dir.path().join("core.sock");
    let chat = ChatProcess::new("/bin/false".into(), socket.clone());
    let shell =
        yollayah_tray::start(options, Recorder::default(), &socket, chat).expect("core starts");
    let view = shell.view();
    assert!(view.hosts.is_empty());
    assert_eq!(view.icon_state(), view.state);
    shell.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_reads_down_and_the_icon_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("sim");
    // A port that was just free: nothing answers there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[[hosts]]\nname = \"closet\"\nurl = \"{gone}\"\n"),
    )
    .expect("config");
    let (shell, _) =
        common::start_following(dir.path(), local.url(), config, Duration::from_millis(200));
    let l = until_line(&shell, "closet", |l| l.state == TrayState::Down).await;
    assert_eq!(l.line, "closet: Ollama not reachable");
    assert!(!l.agent);
    assert_eq!(shell.view().icon_state(), TrayState::Down);
    shell.quit();
}
