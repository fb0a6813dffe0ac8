//! The `[[hosts]]` of the config, followed from the tray: one short menu line per host, the
//! icon's share of each host's state, and alerts that name the host.
//!
//! A host with an agent (`agent_url`) is followed through the agent's event stream
//! ([`AgentClient::follow`]): its NVML-checked verdict is the agent's, scope `agent`. A host
//! without one is read through `/api/ps` on the watchdog's tick, and its placement is shown as
//! "unverified (no agent)": this process has no GPU facts for a server it does not run a
//! watchdog for (the one local watchdog follows `[ollama]` only), so it never claims one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use yollayah_core::Error as CoreError;
use yollayah_core::agent_client::{AgentClient, AgentEvent, RemoteAlert};
use yollayah_core::alerts::IncidentId;
use yollayah_core::config::Config;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::placement::Placement;

use crate::core_state::Followed;
use crate::notify::Notice;
use crate::shell::Shell;
use crate::view::{HostLine, TrayState, tray_state};

/// How long a failed warm stays on its host's line. The agent sends a snapshot every tick, which
/// would replace the failure within seconds, before anyone has opened the menu to read it.
const WARM_FAILURE_HELD: Duration = Duration::from_secs(30);

/// The hosts of `config`, ready to follow. Reads the token files now, so a bad one shows at
/// start.
pub fn from_config(config: &Config) -> Vec<Followed> {
    config
        .hosts
        .iter()
        .map(|host| {
            let mut agent = AgentClient::for_host(host, &config.ollama).map_err(|e| e.to_string());
            let mut ollama = None;
            if let Ok(None) = agent {
                match ClientConfig::from_config(config, Some(&host.url)).and_then(OllamaClient::new)
                {
                    Ok(client) => ollama = Some(client),
                    // A bad `url` would otherwise leave the line waiting forever.
                    Err(e) => agent = Err(e.to_string()),
                }
            }
            Followed {
                config: host.clone(),
                agent,
                ollama,
            }
        })
        .collect()
}

/// The lines before any reading.
pub fn initial_lines(hosts: &[Followed]) -> Vec<HostLine> {
    hosts
        .iter()
        .map(|h| {
            let name = &h.config.name;
            match &h.agent {
                Ok(agent) => HostLine::new(
                    name,
                    agent.is_some(),
                    TrayState::Unknown,
                    "waiting for the first reading…",
                    None,
                ),
                Err(e) => HostLine::new(
                    name,
                    h.config.agent_url.is_some(),
                    TrayState::Unknown,
                    e,
                    Some(e.clone()),
                ),
            }
        })
        .collect()
}

/// The short text for an agent's error, for the host's menu line: for a refused or missing
/// token, the status and what to fix (the token file by name; the detail keeps its path), the
/// error itself otherwise.
fn error_text(err: &CoreError, token_file: Option<&Path>) -> String {
    let file = token_file.map(|f| {
        f.file_name().map_or_else(
            || f.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    });
    match (err, file) {
        (CoreError::AgentAuth { status: 401, .. }, Some(file)) => {
            format!("token refused (401), check {file}")
        }
        (CoreError::AgentAuth { status: 401, .. }, None) => {
            "token required (401), set token_file".to_owned()
        }
        (CoreError::AgentAuth { status: 403, .. }, Some(file)) => {
            format!("{file} is the read token (403)")
        }
        (CoreError::AgentAuth { status, what, .. }, _) => format!("agent {what} ({status})"),
        (other, _) => other.to_string(),
    }
}

fn set_line(shell: &Shell, index: usize, line: HostLine) {
    shell.set_view(|view| {
        if let Some(slot) = view.hosts.get_mut(index) {
            *slot = line;
        }
    });
}

/// A host's routine reading: replaces the line unless a failed warm is still being shown, whose
/// words then stay while the icon's state follows the reading.
fn refresh_line(shell: &Shell, index: usize, line: HostLine) {
    shell.set_view(|view| {
        if let Some(slot) = view.hosts.get_mut(index) {
            if slot.held_until.is_some_and(|until| Instant::now() < until) {
                slot.state = line.state;
            } else {
                *slot = line;
            }
        }
    });
}

/// A remote incident's notice id: remote incident numbers are the agent's own and would
/// collide with the local watchdog's, so each host gets its own range (top bit set, host index
/// above bit 48).
fn remote_id(index: usize, incident: IncidentId) -> IncidentId {
    let host = u64::try_from(index).unwrap_or(0) & 0x7fff;
    IncidentId((1 << 63) | (host << 48) | (incident.0 & ((1 << 48) - 1)))
}

/// The notice for a host's alert: its title names the host. No fix buttons: they act on the
/// local watchdog, not on that host.
pub fn remote_notice(name: &str, index: usize, alert: &RemoteAlert, resolved: bool) -> Notice {
    let id = remote_id(index, alert.incident);
    Notice {
        id,
        summary: format!("{name}: {}", alert.title),
        body: alert.body.clone(),
        actions: Vec::new(),
        replaces: resolved.then_some(id),
    }
}

async fn follow_agent(shell: Arc<Shell>, index: usize, name: String, agent: AgentClient) {
    let token_file = agent.token_file().map(Path::to_owned);
    let mut events = agent.follow(shell.core.cancel.child_token());
    while let Some(event) = events.recv().await {
        match event {
            AgentEvent::Snapshot(snap) => refresh_line(
                &shell,
                index,
                HostLine::new(
                    &name,
                    true,
                    tray_state(snap.verdict),
                    &snap.headline,
                    snap.advice.clone(),
                ),
            ),
            AgentEvent::AlertRaised(alert) if alert.notify => {
                shell.notify(remote_notice(&name, index, &alert, false));
            }
            AgentEvent::AlertResolved(alert) if alert.notify => {
                shell.notify(remote_notice(&name, index, &alert, true));
            }
            AgentEvent::Disconnected { reason, .. } => set_line(
                &shell,
                index,
                HostLine::new(
                    &name,
                    true,
                    TrayState::Unknown,
                    "agent not reachable",
                    Some(reason),
                ),
            ),
            AgentEvent::Failed(err) => {
                tracing::warn!(host = %name, %err, "stopped following the agent");
                set_line(
                    &shell,
                    index,
                    HostLine::new(
                        &name,
                        true,
                        TrayState::Unknown,
                        &error_text(&err, token_file.as_deref()),
                        Some(err.to_string()),
                    ),
                );
            }
            _ => {}
        }
    }
}

/// What `/api/ps` says, read from here: reachable or not, and what is loaded; never a verified
/// placement.
async fn read_bare(name: &str, client: &OllamaClient) -> HostLine {
    let hint = format!(
        "Run `yollayah agent` next to that Ollama and set agent_url (and token_file) for host \
         {name:?} in [[hosts]] to see where the model really runs."
    );
    match client.ps().await {
        Err(e) => HostLine::new(
            name,
            false,
            TrayState::Down,
            "Ollama not reachable",
            Some(e.to_string()),
        ),
        Ok(ps) => {
            let text = match ps.models.first() {
                None => "unverified (no agent) · nothing loaded".to_owned(),
                Some(m) => format!(
                    "unverified (no agent) · ps: {}",
                    Placement::from_ps(m.size, m.size_vram).ps_label()
                ),
            };
            HostLine::new(name, false, TrayState::Unknown, &text, Some(hint))
        }
    }
}

async fn poll_bare(shell: Arc<Shell>, index: usize, name: String, client: OllamaClient) {
    let cancel = shell.core.cancel.clone();
    let mut ticks = tokio::time::interval(shell.core.host_tick.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticks.tick() => {
                let line = read_bare(&name, &client).await;
                set_line(&shell, index, line);
            }
        }
    }
}

/// Starts following every host (a task each). Nothing happens without `[[hosts]]`.
pub fn spawn(shell: &Arc<Shell>) {
    for (index, host) in shell.core.hosts.iter().enumerate() {
        let name = host.config.name.clone();
        match (&host.agent, &host.ollama) {
            (Ok(Some(agent)), _) => {
                let task = follow_agent(shell.clone(), index, name, agent.clone());
                shell.runtime().spawn(task);
            }
            (Ok(None), Some(client)) => {
                let task = poll_bare(shell.clone(), index, name, client.clone());
                shell.runtime().spawn(task);
            }
            // The line already says why this host cannot be read.
            _ => {}
        }
    }
}

/// The notice for a refused or failed warm on a host (one per host: a new one replaces it).
fn warm_failed(name: &str, index: usize, message: String) -> Notice {
    let id = remote_id(index, IncidentId((1 << 48) - 1));
    Notice {
        id,
        summary: format!("{name}: warm failed"),
        body: message,
        actions: Vec::new(),
        replaces: None,
    }
}

/// "Warm" for host `index`: a POST to its agent with the configured (write) token. A refusal
/// shows the agent client's message in a notification and the host's line.
pub fn warm(shell: &Arc<Shell>, index: usize) {
    let Some(host) = shell.core.hosts.get(index) else {
        return;
    };
    let name = host.config.name.clone();
    let agent = match &host.agent {
        Ok(Some(agent)) => agent.clone(),
        Ok(None) => return,
        // The agent was never usable (its line says why); say it again where the click was.
        Err(message) => {
            shell.notify(warm_failed(&name, index, message.clone()));
            return;
        }
    };
    let shell = shell.clone();
    shell.runtime().clone().spawn(async move {
        match agent.warm(None).await {
            Ok(reply) => {
                tracing::info!(host = %name, model = %reply.model, "warmed through the agent");
                // A failure shown from an earlier click is over: the next snapshot tells.
                shell.set_view(|view| {
                    if let Some(slot) = view.hosts.get_mut(index) {
                        slot.held_until = None;
                    }
                });
            }
            Err(err) => {
                tracing::warn!(host = %name, %err, "warm through the agent failed");
                let message = err.to_string();
                let text = format!("warm failed: {}", error_text(&err, agent.token_file()));
                shell.set_view(|view| {
                    if let Some(slot) = view.hosts.get_mut(index) {
                        // The host's placement has not changed: only the words do.
                        let state = slot.state;
                        *slot = HostLine {
                            held_until: Some(Instant::now() + WARM_FAILURE_HELD),
                            ..HostLine::new(&name, true, state, &text, Some(message.clone()))
                        };
                    }
                });
                shell.notify(warm_failed(&name, index, message));
                shell.record_error(&err.into());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_read_short_and_remote_ids_never_meet_local_ones() {
        let err = CoreError::AgentAuth {
            url: "http://10.0.0.2:9811".into(),
            status: 401,
            what: "refused the token".into(),
            fix: "check /home/u/.config/yollayah/gpu.token".into(),
        };
        let file = Path::new("/home/u/.config/yollayah/gpu.token");
        assert_eq!(
            error_text(&err, Some(file)),
            "token refused (401), check gpu.token"
        );
        assert_eq!(
            error_text(&err, None),
            "token required (401), set token_file"
        );
        let forbidden = CoreError::AgentAuth {
            url: "http://10.0.0.2:9811".into(),
            status: 403,
            what: "refused the token for a write".into(),
            fix: "use the write token".into(),
        };
        assert_eq!(
            error_text(&forbidden, Some(file)),
            "gpu.token is the read token (403)"
        );
        let a = remote_id(0, IncidentId(7));
        let b = remote_id(1, IncidentId(7));
        assert_ne!(a, b);
        assert_ne!(a, IncidentId(7));
        assert!(a.0 >= 1 << 63);
    }
}
