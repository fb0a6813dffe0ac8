//! The HTTP(S) server: one hyper http1 connection task per client, bounded in number, with a
//! header read timeout (a slowloris client holds only its own task until it is cut off), a
//! body size and time limit, and bearer-token checks before any route does work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use yollayah_core::watchdog::WatchdogHandle;

use crate::auth::{Decision, Need, Token, Tokens};
use crate::error::{AgentError, Result};
use crate::facts::{Counters, Facts, SelfFacts};
use crate::metrics;
use crate::negotiate::{self, BodyError, MAX_BODY};
use crate::source;
use crate::tls;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Resource limits; the defaults suit a shared server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A client must send its request head within this (per request, keep-alive included).
    pub header_read_timeout: Duration,
    /// …and the body within this.
    pub body_timeout: Duration,
    /// TLS handshakes longer than this are dropped.
    pub tls_handshake_timeout: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// `/api/v1/events` subscribers at most; more get 503.
    pub max_subscribers: usize,
    /// Events buffered for all subscribers (a shared ring): a subscriber further behind gets a
    /// resync line and the current snapshot instead of the events it missed.
    pub event_buffer: usize,
    /// A blank line on an idle event stream this often (keeps proxies and NATs from closing it
    /// and lets the agent notice a vanished client).
    pub heartbeat: Duration,
    /// How long a warm or unload may take before the request answers 504.
    pub action_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_subscribers: 256,
            event_buffer: 64,
            heartbeat: Duration::from_secs(15),
            action_timeout: Duration::from_secs(300),
        }
    }
}

/// How to run the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub read_token_file: Option<PathBuf>,
    pub write_token_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub limits: Limits,
}

impl AgentConfig {
    /// Loopback, no tokens, no TLS: the default.
    pub fn local(port: u16) -> Self {
        AgentConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            read_token_file: None,
            write_token_file: None,
            tls_cert: None,
            tls_key: None,
            limits: Limits::default(),
        }
    }

    /// Checks the rules and reads the secrets; every refusal says why.
    fn resolve(&self) -> Result<(Tokens, Option<tokio_rustls::TlsAcceptor>)> {
        let tokens = match (&self.read_token_file, &self.write_token_file) {
            (None, None) if self.listen.ip().is_loopback() => Tokens::default(),
            (Some(r), Some(w)) => Tokens {
                read: Some(Token::from_file(r)?),
                write: Some(Token::from_file(w)?),
            },
            _ => {
                return Err(AgentError::TokensRequired { addr: self.listen });
            }
        };
        if let (Some(r), Some(w)) = (&tokens.read, &tokens.write) {
            if r.matches(w.secret()) {
                return Err(AgentError::SameTokens);
            }
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some(tls::acceptor(c, k)?),
            _ => {
                return Err(AgentError::Tls(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
        };
        Ok((tokens, tls))
    }
}

struct MetricsState {
    facts: Arc<Facts>,
    counters: Counters,
}

struct Shared {
    watchdog: WatchdogHandle,
    tokens: Tokens,
    limits: Limits,
    metrics: Mutex<MetricsState>,
    /// Render buffers, reused so a scrape allocates only its answer.
    buffers: Mutex<Vec<String>>,
    scrapes: AtomicU64,
    last_scrape_ns: AtomicU64,
    subscribers: AtomicU64,
    start_time_seconds: f64,
    /// Serialized NDJSON event lines, one serialization for every subscriber.
    lines: broadcast::Sender<Bytes>,
    cancel: CancellationToken,
}

/// A started agent.
#[derive(Debug)]
pub struct AgentHandle {
    addr: SocketAddr,
    tls: bool,
    task: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    /// The address it listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Waits until the accept loop has ended (after the cancellation token fired).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Checks the configuration, binds, and serves until `cancel` fires. Refuses to start on a
/// non-loopback address without tokens, or with a token file others can read.
pub async fn start(
    config: AgentConfig,
    watchdog: WatchdogHandle,
    cancel: CancellationToken,
) -> Result<AgentHandle> {
    let (tokens, tls) = config.resolve()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AgentError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let shared = new_shared(watchdog, tokens, config.limits, cancel);
    tokio::spawn(collect(shared.clone()));
    let is_tls = tls.is_some();
    let task = tokio::spawn(accept_loop(listener, shared, tls));
    Ok(AgentHandle {
        addr,
        tls: is_tls,
        task,
    })
}

fn new_shared(
    watchdog: WatchdogHandle,
    tokens: Tokens,
    limits: Limits,
    cancel: CancellationToken,
) -> Arc<Shared> {
    let (lines, _) = broadcast::channel(limits.event_buffer.max(1));
    let latest = watchdog.latest();
    let mut counters = Counters::default();
    counters.init_for(&latest.model);
    Arc::new(Shared {
        metrics: Mutex::new(MetricsState {
            facts: Arc::new(source::facts(&latest, None)),
            counters,
        }),
        watchdog,
        tokens,
        limits,
        buffers: Mutex::new(Vec::new()),
        scrapes: AtomicU64::new(0),
        last_scrape_ns: AtomicU64::new(0),
        subscribers: AtomicU64::new(0),
        start_time_seconds: unix_now(),
        lines,
        cancel,
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Follows the watchdog: counters from every event, facts from every snapshot, and one NDJSON
/// line per event for the subscribers.
async fn collect(shared: Arc<Shared>) {
    let mut events = shared.watchdog.subscribe();
    let mut count_state = source::CountState::default();
    loop {
        let event = tokio::select! {
            () = shared.cancel.cancelled() => break,
            e = events.recv() => e,
        };
        match event {
            Ok(event) => {
                if let Ok(mut m) = shared.metrics.lock() {
                    source::count(&mut m.counters, &mut count_state, &event);
                }
                if let Some(line) = ndjson_line(&event) {
                    // No subscriber is fine.
                    let _ = shared.lines.send(line);
                }
                if source::is_snapshot(&event) {
                    refresh_facts(&shared).await;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                if let Ok(mut m) = shared.metrics.lock() {
                    m.counters.events_missed += n;
                }
                refresh_facts(&shared).await;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

async fn refresh_facts(shared: &Shared) {
    let snapshot = shared.watchdog.latest();
    let up = source::ollama_up(&snapshot);
    // The capture is what the last tick read; while Ollama is down it is stale, so only the
    // snapshot counts then.
    let bundle = if up {
        shared.watchdog.capture().await.ok()
    } else {
        None
    };
    let facts = Arc::new(source::facts(&snapshot, bundle.as_ref()));
    if let Ok(mut m) = shared.metrics.lock() {
        m.facts = facts;
    }
}

fn ndjson_line<T: Serialize>(value: &T) -> Option<Bytes> {
    let mut v = serde_json::to_vec(value).ok()?;
    v.push(b'\n');
    Some(Bytes::from(v))
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; closing the connection from {peer}");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        shared.limits.tls_handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(s)) => serve_connection(s, shared).await,
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                }
                None => serve_connection(stream, shared).await,
            }
        });
    }
}

async fn serve_connection<I>(io: I, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cancel = shared.cancel.clone();
    let header_timeout = shared.limits.header_read_timeout;
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Request heads larger than this are refused (431): nothing we serve needs more.
        .max_buf_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection: {e}");
            }
        }
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Metrics,
    State,
    Events,
    Warm,
    Unload,
    NotFound,
}

impl Route {
    fn of(path: &str) -> Route {
        match path {
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            "/api/v1/state" => Route::State,
            "/api/v1/events" => Route::Events,
            "/api/v1/warm" => Route::Warm,
            "/api/v1/unload" => Route::Unload,
            _ => Route::NotFound,
        }
    }

    fn need(self) -> Need {
        match self {
            Route::Healthz => Need::None,
            Route::Warm | Route::Unload => Need::Write,
            // Unknown paths are not revealed to a client without a token.
            Route::Metrics | Route::State | Route::Events | Route::NotFound => Need::Read,
        }
    }

    fn method(self) -> Method {
        match self {
            Route::Warm | Route::Unload => Method::POST,
            _ => Method::GET,
        }
    }
}

/// Why a request is refused before any route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Open mode (loopback, no tokens) and a `Host` that is not loopback.
    ForeignHost,
    /// 401; `presented` when the client sent an `Authorization` header.
    Unauthorized {
        presented: bool,
    },
    /// 403: the read token on a write route.
    ReadTokenWrites,
    NotFound,
    /// 405; the method the route takes.
    Method {
        allow: &'static str,
    },
}

impl Refusal {
    fn response(self) -> Response<Body> {
        match self {
            // A web page that rebinds its DNS name to 127.0.0.1 must not read or drive the
            // agent.
            Refusal::ForeignHost => error(
                StatusCode::FORBIDDEN,
                "the agent without tokens answers only requests for localhost",
            ),
            Refusal::Unauthorized { presented } => unauthorized(presented),
            Refusal::ReadTokenWrites => error(
                StatusCode::FORBIDDEN,
                "this route needs the write token; the read token only reads",
            ),
            Refusal::NotFound => error(StatusCode::NOT_FOUND, "no such route"),
            Refusal::Method { allow } => {
                let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                r
            }
        }
    }
}

/// Decides a request from its head alone: the route, or why it is refused. The order matters:
/// the token is checked before the path is revealed (an unknown path is a 401 without a
/// token) and before the method.
pub(crate) fn admit(
    tokens: &Tokens,
    method: &Method,
    path: &str,
    host: Option<&[u8]>,
    authorization: Option<&[u8]>,
) -> std::result::Result<Route, Refusal> {
    let route = Route::of(path);
    if !tokens.enabled() && route != Route::Healthz && !loopback_host(host) {
        return Err(Refusal::ForeignHost);
    }
    match tokens.check(route.need(), authorization) {
        Decision::Allow => {}
        Decision::Unauthorized => {
            return Err(Refusal::Unauthorized {
                presented: authorization.is_some(),
            });
        }
        Decision::Forbidden => return Err(Refusal::ReadTokenWrites),
    }
    if route == Route::NotFound {
        return Err(Refusal::NotFound);
    }
    let allowed = route.method();
    let head_ok = method == Method::HEAD && route == Route::Healthz;
    if method != allowed && !head_ok {
        let allow = if allowed == Method::POST {
            "POST"
        } else {
            "GET"
        };
        return Err(Refusal::Method { allow });
    }
    Ok(route)
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let header = |name| req.headers().get(name).map(HeaderValue::as_bytes);
    let route = match admit(
        &shared.tokens,
        req.method(),
        req.uri().path(),
        header(header::HOST),
        header(header::AUTHORIZATION),
    ) {
        Ok(route) => route,
        Err(refusal) => return refusal.response(),
    };
    match route {
        Route::Healthz => text(StatusCode::OK, "ok\n"),
        Route::Metrics => metrics(shared, &req),
        Route::State => state(shared),
        Route::Events => events(shared),
        Route::Warm | Route::Unload => action(shared, route, req).await,
        Route::NotFound => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// Whether a `Host` header value names this machine's loopback (an absent one counts, as in
/// HTTP/1.0).
pub(crate) fn loopback_host(host: Option<&[u8]>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a write route's `Content-Type` and `Content-Length` before its body is read.
pub(crate) fn action_head(
    content_type: Option<&[u8]>,
    content_length: Option<&[u8]>,
) -> std::result::Result<(), (StatusCode, &'static str)> {
    let is_json = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        // Also the CSRF guard: a browser cannot send this cross-origin without a preflight.
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json (the body may be empty or {\"model\": \"…\"})",
        ));
    }
    let declared = content_length
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
    }
    Ok(())
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    full(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(v) => full(status, "application/json", Bytes::from(v)),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "serialization failed\n"),
    }
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

fn unauthorized(presented: bool) -> Response<Body> {
    let (msg, challenge) = if presented {
        (
            "invalid token",
            "Bearer realm=\"yollayah-agent\", error=\"invalid_token\"",
        )
    } else {
        (
            "a bearer token is required",
            "Bearer realm=\"yollayah-agent\"",
        )
    };
    let mut r = error(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

fn metrics(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let format = negotiate::negotiate(req.headers().get(header::ACCEPT).map(HeaderValue::as_bytes));
    let mut buf = shared
        .buffers
        .lock()
        .ok()
        .and_then(|mut b| b.pop())
        .unwrap_or_else(|| String::with_capacity(16 * 1024));
    let me = SelfFacts {
        last_scrape_seconds: shared.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9,
        scrapes: shared.scrapes.load(Ordering::Relaxed),
        event_subscribers: shared.subscribers.load(Ordering::Relaxed),
        start_time_seconds: shared.start_time_seconds,
    };
    if let Ok(m) = shared.metrics.lock() {
        metrics::render(&mut buf, format, &m.facts, &m.counters, &me);
    }
    let body = Bytes::copy_from_slice(buf.as_bytes());
    if let Ok(mut b) = shared.buffers.lock() {
        // Bounded: as many buffers as scrapes ever ran at once, capped.
        if b.len() < 16 {
            b.push(buf);
        }
    }
    shared.scrapes.fetch_add(1, Ordering::Relaxed);
    shared
        .last_scrape_ns
        .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    full(StatusCode::OK, format.content_type(), body)
}

fn state(shared: &Shared) -> Response<Body> {
    let event = source::snapshot_event(shared.watchdog.latest());
    json(StatusCode::OK, &event)
}

struct StreamState {
    shared: Arc<Shared>,
    rx: broadcast::Receiver<Bytes>,
    /// Lines to send before reading the channel again.
    pending: std::collections::VecDeque<Bytes>,
    heartbeat: tokio::time::Interval,
}

/// The subscriber count goes down when a stream ends, however it ends.
impl Drop for StreamState {
    fn drop(&mut self) {
        self.shared.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn events(shared: &Arc<Shared>) -> Response<Body> {
    let n = shared.subscribers.fetch_add(1, Ordering::Relaxed);
    if n as usize >= shared.limits.max_subscribers {
        shared.subscribers.fetch_sub(1, Ordering::Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event subscribers",
        );
    }
    // Subscribe before reading the current state, so nothing falls between the two.
    let rx = shared.lines.subscribe();
    let mut pending = std::collections::VecDeque::new();
    if let Some(line) = ndjson_line(&source::snapshot_event(shared.watchdog.latest())) {
        pending.push_back(line);
    }
    let period = shared.limits.heartbeat;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let st = StreamState {
        shared: shared.clone(),
        rx,
        pending,
        heartbeat,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(line) = st.pending.pop_front() {
            return Some((Ok(Frame::data(line)), st));
        }
        let cancel = st.shared.cancel.clone();
        let next = tokio::select! {
            () = cancel.cancelled() => return None,
            _ = st.heartbeat.tick() => Ok(Bytes::from_static(b"\n")),
            r = st.rx.recv() => r,
        };
        match next {
            Ok(line) => {
                st.heartbeat.reset();
                Some((Ok(Frame::data(line)), st))
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                // Too slow for the shared ring: say so, then hand over the current state.
                let resync = ndjson_line(&Resync {
                    kind: "resync",
                    missed,
                })
                .unwrap_or_else(|| Bytes::from_static(b"\n"));
                if let Some(line) =
                    ndjson_line(&source::snapshot_event(st.shared.watchdog.latest()))
                {
                    st.pending.push_back(line);
                }
                Some((Ok(Frame::data(resync)), st))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Told to a subscriber that fell behind; the current snapshot follows it.
#[derive(Serialize)]
struct Resync {
    #[serde(rename = "type")]
    kind: &'static str,
    missed: u64,
}

#[derive(Serialize)]
struct WarmAnswer {
    model: String,
    load_ms: u64,
    /// `gpu`, `partial`, `cpu` or `unverified` right after the load; absent when the follow-up
    /// tick could not tell.
    placement: Option<&'static str>,
    cpu_share_pct: Option<u8>,
}

async fn action(shared: &Shared, route: Route, req: Request<Incoming>) -> Response<Body> {
    let head = |name| req.headers().get(name).map(HeaderValue::as_bytes);
    if let Err((status, message)) =
        action_head(head(header::CONTENT_TYPE), head(header::CONTENT_LENGTH))
    {
        return error(status, message);
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(shared.limits.body_timeout, body.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "request body too slow"),
    };
    let parsed = match negotiate::parse_action(&bytes) {
        Ok(p) => p,
        Err(e @ BodyError::TooLarge) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string());
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let watched = shared.watchdog.profile().model.clone();
    if let Some(model) = &parsed.model {
        if model != &watched {
            return error(
                StatusCode::CONFLICT,
                &format!("this agent keeps {watched} warm, not {model}"),
            );
        }
    }
    let limit = shared.limits.action_timeout;
    match route {
        Route::Warm => match tokio::time::timeout(limit, shared.watchdog.warm()).await {
            Ok(Ok(outcome)) => {
                // The watchdog answers a warm after the tick that follows the load.
                let (placement, cpu_share_pct) =
                    source::watched_placement(&shared.watchdog.latest());
                json(
                    StatusCode::OK,
                    &WarmAnswer {
                        model: outcome.model,
                        load_ms: outcome.load_ms,
                        placement: placement.map(|p| p.as_str()),
                        cpu_share_pct,
                    },
                )
            }
            Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
            Err(_) => error(StatusCode::GATEWAY_TIMEOUT, "the warm is still running"),
        },
        _ => match tokio::time::timeout(limit, shared.watchdog.unload()).await {
            Ok(Ok(())) => json(
                StatusCode::OK,
                &serde_json::json!({ "model": watched, "unloaded": true }),
            ),
            Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
            Err(_) => error(StatusCode::GATEWAY_TIMEOUT, "the unload is still running"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yollayah_core::config::Config;
    use yollayah_core::machine::Machine;
    use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
    use yollayah_core::persona::Persona;
    use yollayah_core::profile::ModelProfile;
    use yollayah_core::watchdog::{self, WatchdogSettings};

    async fn next_line(body: &mut Body) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a frame in time")
            .expect("stream not ended")
            .expect("no error");
        String::from_utf8(frame.into_data().expect("data frame").to_vec()).expect("utf-8")
    }

    /// A subscriber that stops reading while the shared ring overflows gets a resync line and
    /// the current snapshot, then live events again; nothing is buffered for it beyond the ring.
    #[tokio::test]
    async fn lagging_subscriber_gets_a_resync_snapshot() {
        let cancel = CancellationToken::new();
        // No Ollama behind this URL: the watchdog publishes "down" snapshots, which is enough.
        let url = "http://127.0.0.1:9";
        let client = OllamaClient::new(ClientConfig::new(url)).expect("client");
        let persona = Persona::bundled().expect("bundled persona");
        let profile = ModelProfile::resolve(&Config::default(), &persona);
        let settings = WatchdogSettings {
            warm_on_start: false,
            rewarm: false,
            ..WatchdogSettings::default()
        };
        let wd = watchdog::spawn(
            client,
            Machine::simulator(url).expect("machine"),
            profile,
            Default::default(),
            settings,
            cancel.clone(),
        );
        let limits = Limits {
            event_buffer: 4,
            ..Limits::default()
        };
        let shared = new_shared(wd, Tokens::default(), limits, cancel.clone());
        let mut body = events(&shared).into_body();
        let first = next_line(&mut body).await;
        assert!(first.starts_with(r#"{"type":"snapshot""#), "{first}");
        assert_eq!(shared.subscribers.load(Ordering::Relaxed), 1);
        for i in 0..20 {
            let _ = shared.lines.send(Bytes::from(format!("{{\"n\":{i}}}\n")));
        }
        let resync = next_line(&mut body).await;
        assert_eq!(resync, "{\"type\":\"resync\",\"missed\":16}\n");
        let snap = next_line(&mut body).await;
        assert!(snap.starts_with(r#"{"type":"snapshot""#), "{snap}");
        // The ring's newest four are still delivered, in order.
        for i in 16..20 {
            assert_eq!(next_line(&mut body).await, format!("{{\"n\":{i}}}\n"));
        }
        drop(body);
        assert_eq!(shared.subscribers.load(Ordering::Relaxed), 0);
        cancel.cancel();
    }
}
