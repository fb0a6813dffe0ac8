//! `--host NAME`: `status`, `doctor`, `warm` and `unload` for a `[[hosts]]` entry. With an
//! agent, the agent's verdict is shown: it checked `/api/ps` against NVML and the runner on
//! that machine. A remote host without an agent can only be "unverified (no agent)": this
//! machine's GPU says nothing about a model that runs on another one, and `/api/ps` alone is
//! the source that lies.

use serde::Serialize;
use yollayah_core::agent_client::{AgentClient, RemoteSnapshot, WarmReply};
use yollayah_core::config::{Config, HostConfig, LOCAL_HOST};
use yollayah_core::events::{OllamaState, Verdict};
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::placement::{Placement, UnverifiedReason};
use yollayah_core::scope::{self, Scope};

use crate::context::{Globals, client_for};
use crate::error::Result;
use crate::exit;

/// The `[[hosts]]` entry `--host` names; `None` without `--host` or with `--host local`.
pub fn named<'c>(globals: &Globals, config: &'c Config) -> Result<Option<&'c HostConfig>> {
    match globals.host.as_deref() {
        None | Some(LOCAL_HOST) => Ok(None),
        Some(name) => Ok(Some(config.host(name)?)),
    }
}

/// How a `--host` is observed when the ordinary (local) path does not apply.
pub enum Route<'c> {
    /// Through the host's agent.
    Agent {
        host: &'c HostConfig,
        agent: AgentClient,
    },
    /// A remote Ollama without an agent: `/api/ps` only, unverified.
    Unverified {
        host: &'c HostConfig,
        client: OllamaClient,
    },
}

/// The route for `--host`; `None` when the ordinary path applies (no `--host`, `local`, or a
/// host on this machine without an agent, which NVML here can check).
pub async fn route<'c>(globals: &Globals, config: &'c Config) -> Result<Option<Route<'c>>> {
    let Some(host) = named(globals, config)? else {
        return Ok(None);
    };
    if let Some(agent) = AgentClient::for_host(host, &config.ollama)? {
        return Ok(Some(Route::Agent { host, agent }));
    }
    if scope::resolve(&host.url).await == Scope::Remote {
        let client = client_for(Some(&host.url), config)?;
        return Ok(Some(Route::Unverified { host, client }));
    }
    Ok(None)
}

/// The word and exit code of a verdict, as `doctor` reports them.
fn verdict_word(v: Verdict) -> (&'static str, u8) {
    match v {
        Verdict::Gpu => ("gpu", exit::OK),
        Verdict::Partial { .. } => ("partial", exit::PARTIAL),
        Verdict::Cpu => ("cpu", exit::CPU),
        Verdict::NotLoaded => ("not_loaded", exit::NOT_LOADED),
        Verdict::Down => ("unreachable", exit::UNREACHABLE),
        Verdict::Warming => ("warming", exit::UNKNOWN),
        Verdict::Unknown => ("unknown", exit::UNKNOWN),
        Verdict::Unverified { .. } => ("unverified", exit::UNKNOWN),
    }
}

/// The agent's verdict on `model` (default: the model it watches) and its exit code.
fn judge(snap: &RemoteSnapshot, model: Option<&str>) -> (&'static str, u8) {
    match model {
        Some(m) if m != snap.model => match snap.diagnoses.iter().find(|d| d.model == m) {
            Some(d) if d.loaded => verdict_word(Verdict::from_placement(d.placement.placement)),
            _ => verdict_word(Verdict::NotLoaded),
        },
        _ => verdict_word(snap.verdict),
    }
}

fn ollama_version(s: &RemoteSnapshot) -> Option<&str> {
    match &s.ollama {
        OllamaState::Up { version } => Some(version),
        _ => None,
    }
}

fn placement_words(p: Placement) -> String {
    match p {
        Placement::Gpu => "fully on the GPU".into(),
        Placement::Partial { cpu_pct } => format!("{cpu_pct}% on the CPU"),
        Placement::Cpu => "on the CPU".into(),
        Placement::Unknown => "placement unknown".into(),
        Placement::Unverified { .. } => "on the GPU according to Ollama, UNVERIFIED".into(),
    }
}

#[derive(Debug, Serialize)]
struct AgentReport<'a> {
    host: &'a str,
    scope: Scope,
    /// The Ollama URL as the agent sees it (on its own machine).
    ollama_url: &'a str,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ollama_version: Option<&'a str>,
    verdict: &'static str,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    warm: Option<&'a WarmReply>,
    /// The agent's snapshot, as it sent it.
    agent: &'a serde_json::Value,
}

/// `doctor --host` (and the end of `warm --host`) through the agent.
async fn agent_doctor(
    host: &HostConfig,
    agent: &AgentClient,
    model: Option<&str>,
    json: bool,
    warm: Option<&WarmReply>,
) -> Result<u8> {
    let snap = agent.state().await?;
    let (verdict, code) = judge(&snap, model);
    if json {
        let report = AgentReport {
            host: &host.name,
            scope: Scope::Agent {
                url: agent.base_url().to_owned(),
            },
            ollama_url: &snap.url,
            reachable: ollama_version(&snap).is_some(),
            ollama_version: ollama_version(&snap),
            verdict,
            exit_code: code,
            warm,
            agent: &snap.raw,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(code);
    }
    println!(
        "Host {}: the agent at {} reports (agent scope).",
        host.name,
        agent.base_url()
    );
    match ollama_version(&snap) {
        Some(v) => println!("Ollama {v} at {} on that machine", snap.url),
        None => println!("Ollama is NOT reachable at {} on that machine", snap.url),
    }
    println!("{}", snap.headline);
    if let Some(advice) = &snap.advice {
        println!("  {advice}");
    }
    for d in &snap.diagnoses {
        println!();
        if d.loaded {
            println!(
                "{}: {} (ollama ps: {})",
                d.model,
                placement_words(d.placement.placement),
                d.placement.ps_processor
            );
        } else {
            println!("{}: not loaded", d.model);
        }
        for f in &d.findings {
            println!("  {}. {} — {}", f.rank, f.code, f.title);
            println!("     fix: {}", f.remedy);
        }
    }
    println!("\nVerdict: {verdict}");
    Ok(code)
}

#[derive(Debug, Serialize)]
struct UnverifiedModel {
    name: String,
    /// What `ollama ps` prints; nothing here can check it.
    processor: String,
    ps_placement: Placement,
    placement: Placement,
}

#[derive(Debug, Serialize)]
struct UnverifiedReport<'a> {
    host: &'a str,
    scope: Scope,
    ollama_url: &'a str,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ollama_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    verdict: &'static str,
    exit_code: u8,
    models: Vec<UnverifiedModel>,
    hint: String,
}

fn agent_hint(host: &HostConfig) -> String {
    format!(
        "Run `yollayah agent` next to that Ollama and set agent_url (and token_file) for host \
         {:?} in [[hosts]], or run `yollayah doctor` on that machine, to see where the model \
         really runs.",
        host.name
    )
}

/// `status`/`doctor --host` for a remote Ollama without an agent: what `/api/ps` claims, marked
/// unverified. `doctor` exits with the verdict; `status` only with reachability.
async fn unverified(
    host: &HostConfig,
    client: &OllamaClient,
    model: Option<&str>,
    json: bool,
    verdict_exit: bool,
) -> Result<u8> {
    let (version, ps) = tokio::join!(client.version(), client.ps());
    let (version, models, error) = match (version, ps) {
        (Ok(v), Ok(ps)) => (Some(v.version), ps.models, None),
        (Err(e), _) | (_, Err(e)) => (None, Vec::new(), Some(e.to_string())),
    };
    let models: Vec<UnverifiedModel> = models
        .iter()
        .filter(|m| model.is_none_or(|want| m.name == want || m.model == want))
        .map(|m| {
            let ps = Placement::from_ps(m.size, m.size_vram);
            UnverifiedModel {
                name: m.name.clone(),
                processor: ps.ps_label(),
                ps_placement: ps,
                placement: Placement::Unverified {
                    reason: UnverifiedReason::Remote,
                },
            }
        })
        .collect();
    let (verdict, code) = if version.is_none() {
        ("unreachable", exit::UNREACHABLE)
    } else if models.is_empty() {
        ("not_loaded", exit::NOT_LOADED)
    } else {
        ("unverified", exit::UNKNOWN)
    };
    let code = if verdict_exit || version.is_none() {
        code
    } else {
        exit::OK
    };
    let report = UnverifiedReport {
        host: &host.name,
        scope: Scope::Remote,
        ollama_url: client.base_url(),
        reachable: version.is_some(),
        ollama_version: version,
        error,
        verdict,
        exit_code: code,
        models,
        hint: agent_hint(host),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(code);
    }
    match &report.ollama_version {
        Some(v) => println!(
            "Host {}: Ollama {v} at {} (remote scope: no agent)",
            host.name, report.ollama_url
        ),
        None => {
            println!(
                "Host {}: Ollama is NOT reachable at {}",
                host.name, report.ollama_url
            );
            if let Some(e) = &report.error {
                println!("  {e}");
            }
        }
    }
    if report.reachable && report.models.is_empty() {
        println!("No model is loaded.");
    }
    for m in &report.models {
        println!(
            "{}: unverified (no agent); ollama ps says {}",
            m.name, m.processor
        );
    }
    if report.reachable {
        println!("  {}", report.hint);
    }
    Ok(code)
}

/// `doctor --host`.
pub async fn doctor(route: Route<'_>, model: Option<&str>, json: bool) -> Result<u8> {
    match route {
        Route::Agent { host, agent } => agent_doctor(host, &agent, model, json, None).await,
        Route::Unverified { host, client } => unverified(host, &client, model, json, true).await,
    }
}

#[derive(Debug, Serialize)]
struct AgentStatus<'a> {
    host: &'a str,
    scope: Scope,
    url: &'a str,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    verdict: &'static str,
    headline: &'a str,
    models: Vec<AgentModel<'a>>,
}

#[derive(Debug, Serialize)]
struct AgentModel<'a> {
    name: &'a str,
    processor: &'a str,
    placement: Placement,
}

/// `status --host`: exit 0 when the host's Ollama answers, 3 when not.
pub async fn status(route: Route<'_>, json: bool) -> Result<u8> {
    let (host, agent) = match route {
        Route::Agent { host, agent } => (host, agent),
        Route::Unverified { host, client } => {
            return unverified(host, &client, None, json, false).await;
        }
    };
    let snap = agent.state().await?;
    let (verdict, _) = judge(&snap, None);
    let version = ollama_version(&snap);
    let code = if version.is_some() {
        exit::OK
    } else {
        exit::UNREACHABLE
    };
    let models: Vec<AgentModel<'_>> = snap
        .diagnoses
        .iter()
        .filter(|d| d.loaded)
        .map(|d| AgentModel {
            name: &d.model,
            processor: &d.placement.ps_processor,
            placement: d.placement.placement,
        })
        .collect();
    if json {
        let report = AgentStatus {
            host: &host.name,
            scope: Scope::Agent {
                url: agent.base_url().to_owned(),
            },
            url: &snap.url,
            reachable: version.is_some(),
            version,
            verdict,
            headline: &snap.headline,
            models,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(code);
    }
    match version {
        Some(v) => println!(
            "Host {}: Ollama {v} (agent at {})",
            host.name,
            agent.base_url()
        ),
        None => println!(
            "Host {}: Ollama is not reachable (agent at {})",
            host.name,
            agent.base_url()
        ),
    }
    println!("{}", snap.headline);
    if models.is_empty() {
        println!("No model is loaded.");
    }
    for m in &models {
        println!(
            "  {}  {}  (ollama ps: {})",
            m.name,
            placement_words(m.placement),
            m.processor
        );
    }
    Ok(code)
}

/// `warm --host` through the agent; the exit code is the agent's verdict afterwards.
pub async fn warm_via_agent(
    host: &HostConfig,
    agent: &AgentClient,
    model: Option<&str>,
    json: bool,
) -> Result<u8> {
    let reply = agent.warm(model).await?;
    if !json {
        println!(
            "Loaded {} on {} through its agent in {:.1} s.",
            reply.model,
            host.name,
            reply.load_ms as f64 / 1000.0
        );
    }
    agent_doctor(host, agent, Some(&reply.model), json, Some(&reply)).await
}

/// The end of `warm --host` without an agent: what `/api/ps` claims, unverified.
pub async fn after_remote_warm(
    host: &HostConfig,
    client: &OllamaClient,
    model: &str,
    json: bool,
) -> Result<u8> {
    unverified(host, client, Some(model), json, true).await
}

/// `unload --host` through the agent.
pub async fn unload_via_agent(
    host: &HostConfig,
    agent: &AgentClient,
    model: Option<&str>,
) -> Result<u8> {
    let model = agent.unload(model).await?;
    println!(
        "Asked the agent on {} to unload {model}; it re-warms only after the next warm.",
        host.name
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_map_to_the_documented_exit_codes() {
        let remote = UnverifiedReason::Remote;
        for (v, word, code) in [
            (Verdict::Gpu, "gpu", 0),
            (Verdict::Partial { cpu_pct: 40 }, "partial", 5),
            (Verdict::Cpu, "cpu", 6),
            (Verdict::NotLoaded, "not_loaded", 4),
            (Verdict::Down, "unreachable", 3),
            (Verdict::Unverified { reason: remote }, "unverified", 7),
            (Verdict::Warming, "warming", 7),
        ] {
            assert_eq!(verdict_word(v), (word, code), "{v:?}");
        }
    }
}
