//! A client for `yollayah agent` (docs/agent.md), so the CLI and the tray can follow a remote
//! host through the agent that runs next to its Ollama: the agent's snapshot carries the
//! NVML-checked verdict that `/api/ps` alone cannot give from another machine.
//!
//! Every call has a deadline. A missing or wrong token is [`Error::AgentAuth`], whose message
//! says which file to fix, so the tray and the CLI can show it as is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::alerts::IncidentId;
pub use crate::config::check_agent_url;
use crate::config::{HostConfig, OllamaConfig};
use crate::error::{Error, Result};
use crate::events::{OllamaState, Verdict};
use crate::ollama::client::{ensure_crypto_provider, error_chain};
use crate::placement::{Placement, PlacementReport};

/// How long a warm or unload may take: the agent itself gives up after 5 minutes (`504`).
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(330);
/// The agent writes a keep-alive line every 15 s; three missed ones mean the link is dead.
pub const EVENTS_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// First wait before reconnecting the event stream; it doubles up to [`RECONNECT_MAX`].
pub const RECONNECT_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// A snapshot line is a few KiB; anything this long without a newline is not the agent.
pub(crate) const MAX_LINE: usize = 4 << 20;
/// Events buffered for a slow consumer before the reader waits (the agent then resyncs us).
const EVENT_QUEUE: usize = 64;

/// A bearer token read from a file. `Debug` prints its length only; it is never logged.
#[derive(Clone)]
pub struct AgentToken {
    secret: String,
    file: PathBuf,
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AgentToken({} bytes from {})",
            self.secret.len(),
            self.file.display()
        )
    }
}

impl AgentToken {
    /// Reads `path`, refusing a file that group or others may access, as the agent does with
    /// its own token files: a token that others can read is no secret.
    pub fn from_file(path: &Path) -> Result<AgentToken> {
        let fail = |reason: String| Error::AgentTokenFile {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(fail(format!(
                    "mode {mode:04o} lets group or others read it; run `chmod 600 {}`",
                    path.display()
                )));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let secret = token_secret(&text).map_err(|reason| fail(reason.into()))?;
        Ok(AgentToken {
            secret: secret.to_owned(),
            file: path.to_owned(),
        })
    }

    /// The file the token came from (for messages).
    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// The token in a token file's text: one line of printable ASCII, surrounding whitespace
/// ignored.
pub(crate) fn token_secret(text: &str) -> std::result::Result<&str, &'static str> {
    let secret = text.trim();
    if secret.is_empty() {
        return Err("the file is empty");
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token is printable ASCII without spaces (one line)");
    }
    Ok(secret)
}

/// Deadlines of an [`AgentClient`].
#[derive(Debug, Clone, Copy)]
pub struct AgentTimeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// `/api/v1/state`, and the headers of `/api/v1/events`.
    pub request: Duration,
    /// Warm and unload.
    pub action: Duration,
}

impl AgentTimeouts {
    /// The `[ollama]` connect and request deadlines; they describe the same network.
    pub fn from_config(o: &OllamaConfig) -> Self {
        AgentTimeouts {
            connect: o.connect_timeout(),
            request: o.request_timeout(),
            action: ACTION_TIMEOUT,
        }
    }
}

/// The agent's snapshot (`/api/v1/state`, and `snapshot` lines of the event stream): the
/// same object `yollayah watch --json` prints. Fields this build does not know are kept in
/// [`RemoteSnapshot::raw`] only.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteSnapshot {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The Ollama URL as the agent sees it (usually loopback on its own host).
    pub url: String,
    pub ollama: OllamaState,
    /// The model the agent watches.
    pub model: String,
    pub verdict: Verdict,
    pub headline: String,
    #[serde(default)]
    pub advice: Option<String>,
    #[serde(default)]
    pub diagnoses: Vec<RemoteDiagnosis>,
    #[serde(default)]
    pub warming: bool,
    #[serde(default)]
    pub muted: bool,
    #[serde(default)]
    pub open_incidents: usize,
    /// The whole object as received, for `--json` output.
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl RemoteSnapshot {
    pub(crate) fn from_value(
        raw: serde_json::Value,
    ) -> std::result::Result<Self, serde_json::Error> {
        let mut s = RemoteSnapshot::deserialize(&raw)?;
        s.raw = raw;
        Ok(s)
    }
}

/// One model's diagnosis in a [`RemoteSnapshot`].
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteDiagnosis {
    pub model: String,
    pub loaded: bool,
    pub placement: PlacementReport,
    #[serde(default)]
    pub findings: Vec<RemoteFinding>,
}

/// One finding of a [`RemoteDiagnosis`]; the code is kept as text so an agent that knows
/// newer codes still parses.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteFinding {
    pub code: String,
    pub title: String,
    pub remedy: String,
    pub rank: u32,
    #[serde(default)]
    pub commands: Vec<String>,
}

/// An `alert_raised` or `alert_resolved` line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteAlert {
    pub incident: IncidentId,
    pub model: String,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub code: Option<String>,
    pub placement: Placement,
    pub notify: bool,
}

/// The answer to a warm.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct WarmReply {
    pub model: String,
    pub load_ms: u64,
    /// `gpu`, `partial`, `cpu` or `unverified`, after one follow-up tick.
    pub placement: Option<String>,
    #[serde(default)]
    pub cpu_share_pct: Option<u8>,
}

/// What [`AgentClient::follow`] delivers.
#[derive(Debug)]
pub enum AgentEvent {
    /// The stream is open; a [`AgentEvent::Snapshot`] follows at once.
    Connected,
    Snapshot(Box<RemoteSnapshot>),
    AlertRaised(RemoteAlert),
    AlertResolved(RemoteAlert),
    /// The agent dropped `missed` events for us (we read too slowly); the next snapshot is
    /// the current state.
    Resync {
        missed: u64,
    },
    /// Any other watchdog event (`ollama_down`, `placement_changed`, `warm`, …), as sent.
    Other(serde_json::Value),
    /// The stream broke; the follower reconnects after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// The agent refused the token: following stopped (retrying cannot fix a token).
    Failed(Error),
}

/// A client for one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    /// Without a trailing slash.
    base: String,
    token: Option<AgentToken>,
    timeouts: AgentTimeouts,
}

impl AgentClient {
    /// A client for the agent at `url`, sending `token` (if any) as a bearer token.
    pub fn new(url: &str, token: Option<AgentToken>, timeouts: AgentTimeouts) -> Result<Self> {
        let parsed = check_agent_url(url).map_err(|reason| Error::InvalidHost {
            value: url.to_owned(),
            reason,
        })?;
        ensure_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .tcp_nodelay(true)
            .user_agent(concat!("yollayah/", env!("CARGO_PKG_VERSION")));
        let loopback = parsed.host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| Error::Http(error_chain(&e)))?;
        Ok(AgentClient {
            http,
            base: url.trim_end_matches('/').to_owned(),
            token,
            timeouts,
        })
    }

    /// The client for a `[[hosts]]` entry's agent, or `None` when it has none. Reads (and
    /// checks) the token file now, so a bad file is reported before any request.
    pub fn for_host(host: &HostConfig, ollama: &OllamaConfig) -> Result<Option<Self>> {
        let Some(url) = &host.agent_url else {
            return Ok(None);
        };
        let token = host
            .token_file
            .as_deref()
            .map(AgentToken::from_file)
            .transpose()?;
        AgentClient::new(url, token, AgentTimeouts::from_config(ollama)).map(Some)
    }

    /// The file its token came from, if it sends one.
    pub fn token_file(&self) -> Option<&Path> {
        self.token.as_ref().map(AgentToken::file)
    }

    /// The agent's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(&t.secret),
            None => rb,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> Error {
        Error::AgentUnreachable {
            url: self.base.clone(),
            reason: error_chain(e),
        }
    }

    /// Turns a non-2xx answer into the error that says what to do.
    async fn refusal(&self, what: &str, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let write = what.starts_with("POST");
        let file = self.token.as_ref().map(|t| t.file().display().to_string());
        let auth = |what: &str, fix: String| Error::AgentAuth {
            url: self.base.clone(),
            status: status.as_u16(),
            what: what.to_owned(),
            fix,
        };
        match (status, file) {
            (StatusCode::UNAUTHORIZED, Some(file)) => {
                return auth(
                    "refused the token",
                    format!(
                        "check token_file {file}: it must hold the agent's read or write token"
                    ),
                );
            }
            (StatusCode::UNAUTHORIZED, None) => {
                return auth(
                    "requires a token",
                    "set token_file for this host in [[hosts]] (a file with the agent's read token)"
                        .into(),
                );
            }
            (StatusCode::FORBIDDEN, Some(file)) if write => {
                return auth(
                    "refused the token for a write",
                    format!(
                        "token_file {file} holds the read token; warm and unload need the agent's write token"
                    ),
                );
            }
            _ => {}
        }
        // Bodies are `{"error": "…"}`; read at most a little of anything else.
        let body = match tokio::time::timeout(self.timeouts.request, resp.bytes()).await {
            Ok(Ok(b)) => b,
            _ => bytes::Bytes::new(),
        };
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        Error::AgentApi {
            url: self.base.clone(),
            what: format!("{what} with HTTP {}", status.as_u16()),
            message,
        }
    }

    /// Sends `rb` and reads a JSON answer, all within `deadline`.
    async fn json(
        &self,
        what: &str,
        rb: reqwest::RequestBuilder,
        deadline: Duration,
    ) -> Result<serde_json::Value> {
        let call = async {
            let resp = rb.send().await.map_err(|e| self.unreachable(&e))?;
            if !resp.status().is_success() {
                return Err(self.refusal(what, resp).await);
            }
            let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
            serde_json::from_slice(&body).map_err(|e| self.not_the_api(what, &e))
        };
        tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::AgentUnreachable {
                    url: self.base.clone(),
                    reason: format!("{what} got no answer within {deadline:?}"),
                })
            })
    }

    fn not_the_api(&self, what: &str, e: &serde_json::Error) -> Error {
        Error::AgentApi {
            url: self.base.clone(),
            what: what.to_owned(),
            message: format!("not the agent's API ({e})"),
        }
    }

    /// `GET /api/v1/state`: the agent's latest snapshot.
    pub async fn state(&self) -> Result<RemoteSnapshot> {
        let what = "GET /api/v1/state";
        let v = self
            .json(
                what,
                self.request(reqwest::Method::GET, "/api/v1/state"),
                self.timeouts.request,
            )
            .await?;
        RemoteSnapshot::from_value(v).map_err(|e| self.not_the_api(what, &e))
    }

    /// `POST /api/v1/warm`: loads the agent's model (`model`, when given, must be it: the
    /// agent answers 409 otherwise, so we never act on the wrong host's model).
    pub async fn warm(&self, model: Option<&str>) -> Result<WarmReply> {
        let what = "POST /api/v1/warm";
        let v = self
            .json(
                what,
                self.action("/api/v1/warm", model),
                self.timeouts.action,
            )
            .await?;
        WarmReply::deserialize(&v).map_err(|e| self.not_the_api(what, &e))
    }

    /// `POST /api/v1/unload`: unloads the agent's model and pauses its re-warming.
    pub async fn unload(&self, model: Option<&str>) -> Result<String> {
        #[derive(Deserialize)]
        struct Reply {
            model: String,
        }
        let what = "POST /api/v1/unload";
        let v = self
            .json(
                what,
                self.action("/api/v1/unload", model),
                self.timeouts.action,
            )
            .await?;
        Reply::deserialize(&v)
            .map(|r| r.model)
            .map_err(|e| self.not_the_api(what, &e))
    }

    fn action(&self, path: &str, model: Option<&str>) -> reqwest::RequestBuilder {
        let body = match model {
            Some(m) => serde_json::json!({ "model": m }).to_string(),
            None => String::new(),
        };
        self.request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// Follows `/api/v1/events` until `cancel` fires or the receiver is dropped, reconnecting
    /// with backoff ([`RECONNECT_MIN`] doubling to [`RECONNECT_MAX`], reset once a stream
    /// delivered something). A refused token ends it with [`AgentEvent::Failed`].
    pub fn follow(&self, cancel: CancellationToken) -> mpsc::Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let client = self.clone();
        tokio::spawn(async move {
            let mut backoff = RECONNECT_MIN;
            loop {
                let mut delivered = false;
                let outcome = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = client.stream_once(&tx, &mut delivered) => r,
                };
                let reason = match outcome {
                    Ok(()) => "the agent closed the stream".to_owned(),
                    Err(e @ Error::AgentAuth { .. }) => {
                        let _ = tx.send(AgentEvent::Failed(e)).await;
                        return;
                    }
                    Err(e) => e.to_string(),
                };
                if tx.is_closed() {
                    return;
                }
                if delivered {
                    backoff = RECONNECT_MIN;
                }
                let event = AgentEvent::Disconnected {
                    reason,
                    retry_in: backoff,
                };
                if tx.send(event).await.is_err() {
                    return;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        });
        rx
    }

    /// One connection of [`AgentClient::follow`]; `Ok` when the agent ended the stream.
    async fn stream_once(&self, tx: &mpsc::Sender<AgentEvent>, delivered: &mut bool) -> Result<()> {
        let what = "GET /api/v1/events";
        let rb = self.request(reqwest::Method::GET, "/api/v1/events");
        let resp = match tokio::time::timeout(self.timeouts.request, rb.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.unreachable(&e)),
            Err(_) => {
                return Err(Error::AgentUnreachable {
                    url: self.base.clone(),
                    reason: format!("{what} got no answer within {:?}", self.timeouts.request),
                });
            }
        };
        if !resp.status().is_success() {
            return Err(self.refusal(what, resp).await);
        }
        if tx.send(AgentEvent::Connected).await.is_err() {
            return Ok(());
        }
        let mut body = resp.bytes_stream();
        let mut lines = LineBuffer::default();
        loop {
            let chunk = match tokio::time::timeout(EVENTS_IDLE_TIMEOUT, body.next()).await {
                Err(_) => {
                    return Err(Error::AgentUnreachable {
                        url: self.base.clone(),
                        reason: format!(
                            "the event stream was silent for {EVENTS_IDLE_TIMEOUT:?} (no keep-alive)"
                        ),
                    });
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(self.unreachable(&e)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            for line in lines.push(&chunk).map_err(|m| Error::AgentApi {
                url: self.base.clone(),
                what: what.to_owned(),
                message: m,
            })? {
                let Some(event) = parse_event_line(&line) else {
                    continue;
                };
                *delivered = true;
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Splits a byte stream into lines, refusing one longer than [`MAX_LINE`].
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub(crate) fn push(&mut self, chunk: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            self.pending.extend_from_slice(&rest[..i]);
            out.push(std::mem::take(&mut self.pending));
            rest = &rest[i + 1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_LINE {
            return Err(format!("a line exceeded {MAX_LINE} bytes"));
        }
        Ok(out)
    }
}

/// One NDJSON line of `/api/v1/events`. `None` for a keep-alive (empty line) and for a line
/// this build cannot read (logged: a newer agent may send more).
pub fn parse_event_line(line: &[u8]) -> Option<AgentEvent> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("ignored an event line that is not JSON: {e}");
            return None;
        }
    };
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    let parsed = match kind.as_str() {
        "snapshot" => RemoteSnapshot::from_value(value).map(|s| AgentEvent::Snapshot(Box::new(s))),
        "alert_raised" => RemoteAlert::deserialize(&value).map(AgentEvent::AlertRaised),
        "alert_resolved" => RemoteAlert::deserialize(&value).map(AgentEvent::AlertResolved),
        "resync" => {
            let missed = value
                .get("missed")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            Ok(AgentEvent::Resync { missed })
        }
        _ => Ok(AgentEvent::Other(value)),
    };
    match parsed {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!("ignored a {kind:?} event line: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_keep_alives_are_skipped() {
        let mut b = LineBuffer::default();
        assert!(b.push(b"{\"type\":\"res").unwrap().is_empty());
        let lines = b
            .push(b"ync\",\"missed\":3}\n\n{\"type\":\"ollama_up\"")
            .unwrap();
        assert_eq!(lines.len(), 2);
        assert!(matches!(
            parse_event_line(&lines[0]),
            Some(AgentEvent::Resync { missed: 3 })
        ));
        assert!(parse_event_line(&lines[1]).is_none(), "keep-alive");
        let last = b.push(b",\"version\":\"0.13.0\"}\r\n").unwrap();
        assert!(
            matches!(parse_event_line(&last[0]), Some(AgentEvent::Other(v)) if v["version"] == "0.13.0")
        );
        assert!(parse_event_line(b"not json").is_none());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut b = LineBuffer::default();
        let chunk = vec![b'x'; MAX_LINE / 2 + 1];
        assert!(b.push(&chunk).is_ok());
        assert!(b.push(&chunk).is_err());
    }

    #[test]
    fn agent_urls() {
        for ok in [
            "http://10.0.0.2:9811",
            "https://gpu-box:9811/",
            "http://[fd00::2]:9811",
        ] {
            assert!(check_agent_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.2:9811",
            "ftp://x",
            "http://x:9811/?a=1",
            "http://",
            "gpu-box",
        ] {
            assert!(check_agent_url(bad).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn token_files_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AgentToken::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("token_file") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = AgentToken::from_file(&path).unwrap();
        assert_eq!(t.secret, "s3cret-token");
        assert!(!format!("{t:?}").contains("s3cret"));
        std::fs::write(&path, "  \n").unwrap();
        assert!(
            AgentToken::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = AgentToken::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
