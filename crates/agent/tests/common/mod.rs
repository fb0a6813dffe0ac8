//! A simulator, a watchdog on its simulated machine, and an agent serving it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ollama_sim::{Scenario, SimHandle};
use tokio_util::sync::CancellationToken;
use yollayah_agent::{AgentConfig, AgentHandle, Limits};
use yollayah_core::config::Config;
use yollayah_core::machine::Machine;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::persona::Persona;
use yollayah_core::profile::ModelProfile;
use yollayah_core::watchdog::{self, WatchdogHandle, WatchdogSettings};

pub const READ: &str = "read-0123456789abcdef0123456789abcdef";
pub const WRITE: &str = "write-0123456789abcdef0123456789abcdef";

pub struct Rig {
    pub sim: SimHandle,
    pub watchdog: WatchdogHandle,
    pub agent: AgentHandle,
    pub cancel: CancellationToken,
    pub dir: tempfile::TempDir,
    pub url: String,
}

/// Writes `secret` to `dir/name` with `mode`.
pub fn secret_file(dir: &Path, name: &str, secret: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{secret}\n")).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

pub fn watchdog_on(sim: &SimHandle, tick: Duration, cancel: &CancellationToken) -> WatchdogHandle {
    let client = OllamaClient::new(ClientConfig {
        load_timeout: Duration::from_secs(20),
        ..ClientConfig::new(sim.url())
    })
    .expect("client");
    let persona = Persona::bundled().expect("bundled persona");
    let profile = ModelProfile::resolve(&Config::default(), &persona);
    watchdog::spawn(
        client,
        Machine::simulator(&sim.url()).expect("sim machine"),
        profile,
        OllamaEnv::default(),
        WatchdogSettings {
            tick,
            ..WatchdogSettings::default()
        },
        cancel.clone(),
    )
}

pub struct Options {
    pub tokens: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub limits: Limits,
    pub scenario: Scenario,
    pub tick: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tokens: true,
            tls: None,
            limits: Limits::default(),
            scenario: Scenario::default(),
            tick: Duration::from_millis(300),
        }
    }
}

pub async fn rig(opts: Options) -> Rig {
    yollayah_core::ollama::client::ensure_crypto_provider();
    let sim = ollama_sim::start(opts.scenario).await.expect("start sim");
    let cancel = CancellationToken::new();
    let watchdog = watchdog_on(&sim, opts.tick, &cancel);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = AgentConfig::local(0);
    config.limits = opts.limits;
    if opts.tokens {
        config.read_token_file = Some(secret_file(dir.path(), "read", READ, 0o600));
        config.write_token_file = Some(secret_file(dir.path(), "write", WRITE, 0o600));
    }
    if let Some((cert, key)) = opts.tls {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
    }
    let agent = yollayah_agent::start(config, watchdog.clone(), cancel.clone())
        .await
        .expect("agent starts");
    let url = agent.url();
    Rig {
        sim,
        watchdog,
        agent,
        cancel,
        dir,
        url,
    }
}

pub fn http() -> reqwest::Client {
    yollayah_core::ollama::client::ensure_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// Polls `f` until it is true or `limit` passes.
pub async fn until<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
