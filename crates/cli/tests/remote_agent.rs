//! `--host` end to end across a network namespace: the simulator and `yollayah agent` (the
//! real binary, bound on the namespace's address with token files) run inside it, the CLI
//! outside, as on a GPU server and a desktop. Without an agent the remote host is
//! "unverified (no agent)"; through the agent the CLI shows the agent's verdict, including a
//! CPU fallback staged in the simulator that `/api/ps` hides; a wrong or missing token is a
//! 401 with a message naming `token_file`; the read token cannot warm (403). The agent client
//! also follows the agent's event stream across an agent restart.
//!
//! Needs root and `ip`; without them it prints why and skips.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use yollayah_core::agent_client::{AgentClient, AgentEvent, AgentTimeouts, AgentToken};
use yollayah_testkit::netns::NetNs;

const MODEL: &str = "llama3.2:3b";
const SIM_ENTRY: &str = "netns_sim_entry_for_agent";
const READ: &str = "read-0123456789abcdef0123456789abcdef";
const WRITE: &str = "write-0123456789abcdef0123456789abcdef";
const WRONG: &str = "wrong-0123456789abcdef0123456789abcdef";

/// Not a test: the simulator's entry point inside the namespace (see [`NsSim`]).
#[test]
#[ignore = "entry point of the simulator inside a network namespace"]
fn netns_sim_entry_for_agent() {
    serve_sim_in_netns();
}

fn secret(dir: &Path, name: &str, value: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// `yollayah agent` inside the namespace; killed on drop.
struct Agent(Child);

impl Agent {
    fn start(ns: &NetNs, home: &Home, sim_url: &str, listen: &str) -> Agent {
        let dir = home.dir.path();
        let child = ns
            .command(env!("CARGO_BIN_EXE_yollayah"))
            .args(["--url", sim_url, "agent", "--listen", listen])
            .arg("--read-token-file")
            .arg(dir.join("agent-read"))
            .arg("--write-token-file")
            .arg(dir.join("agent-write"))
            .args(["--gpu-source", "sim"])
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("agent-config"))
            .env("XDG_DATA_HOME", dir.join("agent-data"))
            .env_remove("OLLAMA_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Agent(child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `POST {url}{path}` with a JSON body: the simulator's control API, across the veth.
fn post(url: &str, path: &str, body: &str) {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 2"), "{path}: {answer}");
}

/// Runs `args` until `ok` holds for its result (at most 30 s); returns the last run.
async fn until_run(home: &Home, args: &[&str], ok: impl Fn(&Run) -> bool) -> Run {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = home.run(args).await;
        if ok(&r) || tokio::time::Instant::now() >= end {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_host_through_the_agent_and_without_one() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let sim = NsSim::start(&ns, SIM_ENTRY);
    let home = Home::new();
    let dir = home.dir.path().to_owned();
    secret(&dir, "agent-read", READ, 0o600);
    secret(&dir, "agent-write", WRITE, 0o600);
    std::fs::create_dir_all(dir.join("agent-config/yollayah")).unwrap();
    std::fs::write(
        dir.join("agent-config/yollayah/config.toml"),
        "[watchdog]\ntick_ms = 250\n[alerts]\ncooldown_s = 0\n",
    )
    .unwrap();
    let listen = format!("{}:9811", ns.inside_addr());
    let agent_url = format!("http://{listen}");
    let mut agent = Agent::start(&ns, &home, &sim.url, &listen);

    let read = secret(&dir, "read", READ, 0o600);
    let write = secret(&dir, "write", WRITE, 0o600);
    let wrong = secret(&dir, "wrong", WRONG, 0o600);
    let loose = secret(&dir, "loose", READ, 0o644);
    let host = |name: &str, token: Option<&Path>| {
        let mut h = format!(
            "[[hosts]]\nname = \"{name}\"\nurl = \"{}\"\nagent_url = \"{agent_url}\"\n",
            sim.url
        );
        if let Some(t) = token {
            h += &format!("token_file = \"{}\"\n", t.display());
        }
        h
    };
    home.write_config(&format!(
        "[[hosts]]\nname = \"bare\"\nurl = \"{}\"\n\n{}\n{}\n{}\n{}\n{}",
        sim.url,
        host("gpu", Some(&read)),
        host("writer", Some(&write)),
        host("wrong", Some(&wrong)),
        host("none", None),
        host("loose", Some(&loose)),
    ));

    bounded(async {
        // The agent warms its model at start; its verdict reaches us through the veth.
        let doctor_gpu = ["doctor", "--host", "gpu", "--json"];
        let r = until_run(&home, &doctor_gpu, |r| r.code == 0).await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["scope"]["kind"], "agent", "{j:#}");
        assert_eq!(j["scope"]["url"], agent_url.as_str());
        assert_eq!(j["verdict"], "gpu");
        assert_eq!(j["agent"]["model"], MODEL);

        // Without an agent the same server is remote: /api/ps only, unverified.
        let r = home.run(&["doctor", "--host", "bare", "--json"]).await;
        assert_eq!(r.code, 7, "{r:?}");
        let j = r.json();
        assert_eq!(j["scope"]["kind"], "remote", "{j:#}");
        assert_eq!(j["verdict"], "unverified");
        assert_eq!(j["models"][0]["name"], MODEL);
        assert_eq!(j["models"][0]["placement"]["kind"], "unverified");
        let r = home.run(&["status", "--host", "bare"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("unverified (no agent)"), "{}", r.stdout);

        // A CPU fallback that /api/ps hides: the agent sees it, the bare host cannot.
        post(
            &sim.url,
            "/__sim/fault",
            &format!(r#"{{"kind":"ps_lies_gpu","model":"{MODEL}"}}"#),
        );
        let r = until_run(&home, &doctor_gpu, |r| r.code == 6).await;
        assert_eq!(r.code, 6, "{r:?}");
        assert_eq!(r.json()["verdict"], "cpu");
        let r = home.run(&["doctor", "--host", "gpu"]).await;
        assert!(
            r.stdout.contains("agent scope") && r.stdout.contains("Verdict: cpu"),
            "{}",
            r.stdout
        );
        let r = home.run(&["doctor", "--host", "bare", "--json"]).await;
        assert_eq!(
            (r.code, r.json()["verdict"].clone()),
            (7, Value::from("unverified"))
        );
        let r = home.run(&["status", "--host", "gpu", "--json"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json()["verdict"], "cpu");

        // Tokens: wrong, missing, read-only for a write, loose file.
        let r = home.run(&["doctor", "--host", "wrong"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(
            r.stderr
                .contains(&format!("agent at {agent_url} refused the token (401)"))
                && r.stderr
                    .contains(&format!("check token_file {}", wrong.display())),
            "{}",
            r.stderr
        );
        let r = home.run(&["status", "--host", "none"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(
            r.stderr.contains("requires a token (401)") && r.stderr.contains("token_file"),
            "{}",
            r.stderr
        );
        let r = home.run(&["warm", "--host", "gpu"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(
            r.stderr.contains("(403)") && r.stderr.contains("write token"),
            "{}",
            r.stderr
        );
        let r = home.run(&["doctor", "--host", "loose"]).await;
        assert_eq!(r.code, 8, "{r:?}");
        assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);

        // The write token warms through the agent; the exit code is its verdict after.
        post(&sim.url, "/__sim/clear", "{}");
        let r = until_run(&home, &doctor_gpu, |r| r.code == 0).await;
        assert_eq!(r.code, 0, "{r:?}");
        let r = home.run(&["warm", "--host", "writer", "--json"]).await;
        assert_eq!(r.code, 0, "{r:?}");
        let j = r.json();
        assert_eq!(j["warm"]["model"], MODEL, "{j:#}");
        assert_eq!(j["verdict"], "gpu");

        // The event stream: snapshot first, an alert for a staged fault, and a reconnect
        // after the agent restarts.
        let token = AgentToken::from_file(&read).unwrap();
        let timeouts = AgentTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
            action: Duration::from_secs(30),
        };
        let client = AgentClient::new(&agent_url, Some(token), timeouts).unwrap();
        let cancel = CancellationToken::new();
        let mut events = client.follow(cancel.clone());
        assert!(matches!(next(&mut events).await, AgentEvent::Connected));
        match next(&mut events).await {
            AgentEvent::Snapshot(s) => assert_eq!(s.model, MODEL),
            other => panic!("the first line must be the snapshot: {other:?}"),
        }
        post(
            &sim.url,
            "/__sim/fault",
            &format!(r#"{{"kind":"ps_lies_gpu","model":"{MODEL}"}}"#),
        );
        loop {
            if let AgentEvent::AlertRaised(a) = next(&mut events).await {
                assert_eq!(a.model, MODEL);
                break;
            }
        }
        drop(agent);
        loop {
            if let AgentEvent::Disconnected { retry_in, .. } = next(&mut events).await {
                assert!(retry_in <= Duration::from_secs(30));
                break;
            }
        }
        agent = Agent::start(&ns, &home, &sim.url, &listen);
        loop {
            if matches!(next(&mut events).await, AgentEvent::Connected) {
                break;
            }
        }
        match next(&mut events).await {
            AgentEvent::Snapshot(s) => assert_eq!(s.model, MODEL),
            other => panic!("a reconnect starts with the snapshot: {other:?}"),
        }
        cancel.cancel();

        // A wrong token ends following with the typed error, instead of retrying forever.
        let bad = AgentClient::new(
            &agent_url,
            Some(AgentToken::from_file(&wrong).unwrap()),
            timeouts,
        )
        .unwrap();
        let mut events = bad.follow(CancellationToken::new());
        match next(&mut events).await {
            AgentEvent::Failed(e) => {
                assert!(e.to_string().contains("refused the token (401)"), "{e}")
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        drop(agent);
    })
    .await;
}

/// The next event, within 30 s.
async fn next(events: &mut tokio::sync::mpsc::Receiver<AgentEvent>) -> AgentEvent {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("no event in 30 s")
        .expect("the follower ended")
}
