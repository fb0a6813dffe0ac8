//! Shared helpers for the CLI tests: the real `yollayah` binary, run against an in-process
//! `ollama-sim` on an ephemeral port, with a private temp home so nothing touches the user's.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use ollama_sim::bounded;
use ollama_sim::{Scenario, SimHandle};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use yollayah_testkit::netns::NetNs;

/// The default demo machine (12 GiB), with quick but measurable loads.
pub fn demo() -> Scenario {
    Scenario {
        load_ms: 300,
        tokens_per_second: 2000.0,
        ..Scenario::default()
    }
}

/// A scenario file shipped with the simulator.
pub fn scenario_file(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ollama-sim/scenarios")
        .join(name);
    Scenario::from_file(&path).unwrap()
}

pub async fn sim(sc: Scenario) -> SimHandle {
    ollama_sim::start(sc).await.expect("simulator starts")
}

/// A URL where nothing listens: bind an ephemeral port, then close it.
pub fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// One finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// A private home: XDG config and data dirs in a temp dir.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Writes `$XDG_CONFIG_HOME/yollayah/config.toml`.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let dir = self.config_dir().join("yollayah");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_yollayah"));
        cmd.args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env_remove("OLLAMA_HOST")
            .env_remove("YOLLAYAH_OLLAMA_URL")
            .env_remove("YOLLAYAH_CONFIG")
            .env_remove("OLLAMA_NUM_PARALLEL")
            .env_remove("OLLAMA_CONTEXT_LENGTH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `yollayah ARGS` to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None).await
    }

    /// Runs `yollayah ARGS`, feeding `stdin` (then EOF) when given.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("yollayah {args:?} did not finish in 60 s"))
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The codes of a diagnosis' findings, in rank order.
pub fn codes(diagnosis: &Value) -> Vec<String> {
    diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// The diagnosis of `model` in a doctor report.
pub fn diagnosis<'a>(report: &'a Value, model: &str) -> &'a Value {
    report["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["model"] == model)
        .unwrap_or_else(|| panic!("no diagnosis for {model}: {report:#}"))
}

/// Set (to a listen address) only in the copy of a test binary that serves the simulator
/// inside a namespace.
pub const SIM_LISTEN_ENV: &str = "YOLLAYAH_TEST_SIM_LISTEN";

/// The body of a test binary's namespace entry point (an `#[ignore]`d test that [`NsSim`]
/// runs inside the namespace): serves [`demo`] at `$YOLLAYAH_TEST_SIM_LISTEN` until stdin
/// closes; does nothing when it is unset.
pub fn serve_sim_in_netns() {
    let Ok(listen) = std::env::var(SIM_LISTEN_ENV) else {
        return;
    };
    let addr: SocketAddr = listen.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sim = ollama_sim::start_on(demo(), addr).await.unwrap();
        println!("LISTENING {}", sim.url());
        std::io::stdout().flush().unwrap();
        // The parent closes stdin (or dies) when it is done with us.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        sim.shutdown().await;
    });
}

/// The simulator serving inside a namespace; killed on drop, before the namespace goes.
pub struct NsSim {
    child: Child,
    pub url: String,
}

impl NsSim {
    /// Starts it by re-running this test binary's `entry` test inside `ns`.
    pub fn start(ns: &NetNs, entry: &str) -> NsSim {
        let listen = format!("{}:11434", ns.inside_addr());
        let mut child = ns
            .self_command(entry)
            .unwrap()
            .env(SIM_LISTEN_ENV, &listen)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test NAME ... " on the same line first.
                if let Some((_, url)) = line.split_once("LISTENING ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the simulator inside the namespace did not start");
        NsSim { child, url }
    }
}

impl Drop for NsSim {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
