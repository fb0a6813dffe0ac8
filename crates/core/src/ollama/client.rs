//! The HTTP client for Ollama's native API.
//!
//! Every call has a deadline, and errors keep Ollama's own words: a non-2xx answer becomes
//! [`Error::Api`] with the `error` text of the body, a refused connection [`Error::Unreachable`],
//! a missed deadline [`Error::Timeout`]. Streams are read with two clocks: a long one until the
//! first byte (loading a model can take minutes) and a short idle one between chunks after
//! that, so a stuck runner is noticed without cutting off a slow load.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, Result};
use crate::ollama::host;
use crate::ollama::stream::{DEFAULT_MAX_LINE_BYTES, NdjsonDecoder, StreamItem};
use crate::ollama::types::{
    ChatChunk, ChatRequest, EmbedLoadRequest, ErrorBody, GenerateChunk, GenerateRequest, KeepAlive,
    Options, PsResponse, PullProgress, PullRequest, ShowRequest, ShowResponse, TagsResponse,
    VersionResponse,
};

/// Largest non-streamed body accepted; `/api/show` with `tensors` is the biggest real one
/// (a few MiB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How much of an error body is read, and how much of a non-JSON one is quoted.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
const MAX_ERROR_TEXT_CHARS: usize = 512;

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// Where Ollama is and how long to wait for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `http(s)://host:port[/prefix]`, e.g. from [`host::OllamaHost::connectable_url`].
    pub base_url: String,
    /// TCP (and TLS) connect deadline. Local Ollama accepts in microseconds; a long wait means
    /// it is not there.
    pub connect_timeout: Duration,
    /// Whole-call deadline for quick calls (`version`, `tags`, `show`, `ps`, `unload`).
    pub request_timeout: Duration,
    /// Deadline for calls that may load a model (`load`, `chat`) and for the first byte of a
    /// stream, which Ollama only sends after loading and prompt evaluation.
    pub load_timeout: Duration,
    /// Longest silence between two reads once a stream has started.
    pub stream_idle_timeout: Duration,
    /// Longest NDJSON line accepted from a stream.
    pub max_line_bytes: usize,
}

impl ClientConfig {
    /// Default deadlines for the given base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            load_timeout: Duration::from_secs(5 * 60),
            stream_idle_timeout: Duration::from_secs(60),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// Default deadlines and the server `OLLAMA_HOST` points at (official client rules).
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(host::from_env()?.connectable_url()))
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new(host::OllamaHost::default().connectable_url())
    }
}

/// A cheap-to-clone handle to one Ollama server; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct OllamaClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `base_url` without a trailing slash, so API paths are appended as strings.
    base: String,
    config: ClientConfig,
}

impl OllamaClient {
    /// Builds a client; fails with [`Error::InvalidHost`] if `base_url` is not an http(s) URL.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidHost {
            value: config.base_url.clone(),
            reason,
        };
        let url = Url::parse(&config.base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme {:?} is not http(s)", url.scheme())));
        }
        let host = url.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        ensure_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("yollayah/", env!("CARGO_PKG_VERSION")));
        if loopback {
            // Like Go's ProxyFromEnvironment: an HTTP_PROXY meant for the internet must not
            // swallow requests to the local server.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| Error::Http(error_chain(&e)))?;
        let base = config.base_url.trim_end_matches('/').to_owned();
        Ok(OllamaClient {
            inner: Arc::new(Inner { http, base, config }),
        })
    }

    /// A client for the server `OLLAMA_HOST` points at, with default deadlines.
    pub fn from_env() -> Result<Self> {
        Self::new(ClientConfig::from_env()?)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The base URL requests go to (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `GET /api/version`.
    pub async fn version(&self) -> Result<VersionResponse> {
        self.call(Method::GET, "/api/version", None::<&()>, self.quick())
            .await
    }

    /// `GET /api/tags`: the installed models.
    pub async fn tags(&self) -> Result<TagsResponse> {
        self.call(Method::GET, "/api/tags", None::<&()>, self.quick())
            .await
    }

    /// `POST /api/show` for `model` (without `verbose`).
    pub async fn show(&self, model: &str) -> Result<ShowResponse> {
        let req = ShowRequest {
            model,
            verbose: false,
        };
        self.call(Method::POST, "/api/show", Some(&req), self.quick())
            .await
    }

    /// `GET /api/ps`: the loaded models and where they sit.
    pub async fn ps(&self) -> Result<PsResponse> {
        self.call(Method::GET, "/api/ps", None::<&()>, self.quick())
            .await
    }

    /// `POST /api/chat`, streamed. `stream: false` in `req` is overridden.
    pub async fn chat_stream(&self, req: &ChatRequest) -> Result<ChatStream> {
        let body = if req.stream == Some(false) {
            Cow::Owned(ChatRequest {
                stream: Some(true),
                ..req.clone()
            })
        } else {
            Cow::Borrowed(req)
        };
        self.open_stream("/api/chat", &*body).await
    }

    /// `POST /api/generate`, streamed. `stream: false` in `req` is overridden.
    pub async fn generate_stream(&self, req: &GenerateRequest) -> Result<GenerateStream> {
        let body = if req.stream == Some(false) {
            Cow::Owned(GenerateRequest {
                stream: Some(true),
                ..req.clone()
            })
        } else {
            Cow::Borrowed(req)
        };
        self.open_stream("/api/generate", &*body).await
    }

    /// `POST /api/pull`, streamed: progress lines until `success`. An unknown model is an
    /// [`Error::StreamError`] item with Ollama's text (it fails inside a 200 stream). The first
    /// line must come within `load_timeout`, later ones within `stream_idle_timeout`; dropping
    /// the stream cancels the pull on the server.
    pub async fn pull_stream(&self, model: &str) -> Result<PullStream> {
        self.open_stream(
            "/api/pull",
            &PullRequest {
                model,
                stream: true,
            },
        )
        .await
    }

    /// `POST /api/chat` with `stream: false`: the whole reply as one chunk. Bounded by
    /// `load_timeout`, since it includes loading and the whole generation.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatChunk> {
        let body = if req.stream == Some(false) {
            Cow::Borrowed(req)
        } else {
            Cow::Owned(ChatRequest {
                stream: Some(false),
                ..req.clone()
            })
        };
        let mut chunk: ChatChunk = self
            .call(Method::POST, "/api/chat", Some(&*body), self.slow())
            .await?;
        match chunk.error.take() {
            Some(message) => Err(Error::StreamError { message }),
            None => Ok(chunk),
        }
    }

    /// Loads `model` without generating (an empty `/api/generate`) and waits until it is
    /// loaded; the answer has `done_reason: "load"`. Pass the same `options` as later
    /// requests, or the first real request reloads the model (fact sheet §4, §5).
    pub async fn load(
        &self,
        model: &str,
        keep_alive: Option<KeepAlive>,
        options: Option<&Options>,
    ) -> Result<GenerateChunk> {
        let req = GenerateRequest {
            model: model.to_owned(),
            stream: Some(false),
            keep_alive,
            options: options.cloned(),
            ..GenerateRequest::default()
        };
        self.call(Method::POST, "/api/generate", Some(&req), self.slow())
            .await
    }

    /// Loads an embedding model (`POST /api/embed` without `input`), for `keep_alive`. Generate
    /// and chat answer 400 for these models, so this is the only way to warm them.
    pub async fn load_embedding(&self, model: &str, keep_alive: Option<KeepAlive>) -> Result<()> {
        let req = EmbedLoadRequest { model, keep_alive };
        let _: serde_json::Value = self
            .call(Method::POST, "/api/embed", Some(&req), self.slow())
            .await?;
        Ok(())
    }

    /// Asks Ollama to unload `model` (`keep_alive: 0`). Ollama answers at once and unloads
    /// after in-flight requests finish; it also unloads every model sharing the same weights.
    pub async fn unload(&self, model: &str) -> Result<()> {
        let req = GenerateRequest {
            model: model.to_owned(),
            stream: Some(false),
            keep_alive: Some(KeepAlive::UNLOAD),
            ..GenerateRequest::default()
        };
        let _: GenerateChunk = self
            .call(Method::POST, "/api/generate", Some(&req), self.quick())
            .await?;
        Ok(())
    }

    fn quick(&self) -> Duration {
        self.inner.config.request_timeout
    }

    fn slow(&self) -> Duration {
        self.inner.config.load_timeout
    }

    fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        accept: &'static str,
    ) -> Result<reqwest::RequestBuilder> {
        let url = format!("{}{}", self.inner.base, path);
        let mut rb = self
            .inner
            .http
            .request(method, url)
            .header(ACCEPT, HeaderValue::from_static(accept));
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| Error::InvalidResponse {
                what: path.to_owned(),
                reason: format!("could not encode the request: {e}"),
            })?;
            rb = rb
                .header(CONTENT_TYPE, HeaderValue::from_static(JSON))
                .body(bytes);
        }
        Ok(rb)
    }

    /// A non-streamed JSON call with one deadline over connect, answer and body.
    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R> {
        let what = format!("{method} {path}");
        let rb = self.request(method, path, body, JSON)?;
        let bytes = within(&what, timeout, async {
            let resp = self.send(rb).await?;
            let resp = self.check_status(resp).await?;
            read_capped(resp, MAX_BODY_BYTES)
                .await?
                .ok_or_else(|| Error::InvalidResponse {
                    what: what.clone(),
                    reason: format!("body larger than {MAX_BODY_BYTES} bytes"),
                })
        })
        .await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
            what,
            reason: e.to_string(),
        })
    }

    async fn open_stream<B: Serialize + ?Sized, T: StreamItem>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<NdjsonStream<T>> {
        let what = format!("POST {path}");
        let cfg = &self.inner.config;
        let rb = self.request(Method::POST, path, Some(body), NDJSON)?;
        let started = Instant::now();
        let resp = within(&what, cfg.load_timeout, async {
            let resp = self.send(rb).await?;
            self.check_status(resp).await
        })
        .await?;
        // The first-byte clock started with the request: headers and first chunk usually
        // arrive together, after the load.
        let first_deadline = started + cfg.load_timeout;
        Ok(NdjsonStream {
            body: Box::pin(resp.bytes_stream()),
            decoder: NdjsonDecoder::with_max_line_bytes(cfg.max_line_bytes),
            timer: Box::pin(tokio::time::sleep_until(first_deadline)),
            load_timeout: cfg.load_timeout,
            idle_timeout: cfg.stream_idle_timeout,
            got_bytes: false,
            what,
            ended: false,
        })
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        rb.send().await.map_err(|e| {
            if e.is_connect() {
                Error::Unreachable {
                    url: self.inner.base.clone(),
                    reason: error_chain(&e),
                }
            } else {
                Error::Http(error_chain(&e))
            }
        })
    }

    /// Turns a non-2xx answer into [`Error::Api`] carrying Ollama's own error text.
    async fn check_status(&self, resp: reqwest::Response) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        // Whatever part of the body arrived is still the best explanation there is.
        let body = read_capped(resp, MAX_ERROR_BODY_BYTES)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        Err(Error::Api {
            status: status.as_u16(),
            message: error_message(status, &body),
        })
    }
}

/// Runs `fut` under a deadline, reporting a miss as [`Error::Timeout`] for `what`.
async fn within<T>(what: &str, after: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(after, fut).await.unwrap_or_else(|_| {
        Err(Error::Timeout {
            what: what.to_owned(),
            after,
        })
    })
}

/// The body, or `None` if it is longer than `cap` (read no further than that).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Option<Bytes>> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::Http(error_chain(&e)))?
    {
        if buf.is_empty() && resp.content_length() == Some(chunk.len() as u64) {
            return Ok((chunk.len() <= cap).then_some(chunk));
        }
        if buf.len() + chunk.len() > cap {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(buf)))
}

/// Ollama's `{"error": …}` text, or the raw body (shortened) when it is not that JSON.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        return error;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no error text")
            .to_owned();
    }
    match text.char_indices().nth(MAX_ERROR_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// reqwest's own message is terse ("error sending request"); the cause chain says what
/// actually happened ("Connection refused").
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Installs ring as rustls' crypto provider (once per process). TLS is only needed for an
/// `https://` OLLAMA_HOST; with rustls nothing is initialised until a TLS connection is made,
/// whereas a system OpenSSL is loaded and initialised at start-up (≈4 MB resident in an idle
/// `yollayah watch`).
pub fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves just as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A streamed `/api/chat` reply.
pub type ChatStream = NdjsonStream<ChatChunk>;
/// A streamed `/api/generate` reply.
pub type GenerateStream = NdjsonStream<GenerateChunk>;
/// A `/api/pull` progress stream; ends after the `success` line.
pub type PullStream = NdjsonStream<PullProgress>;

/// Items of a streamed reply, as a [`Stream`] or through [`next`](Self::next).
///
/// Ends after the `done` item; otherwise its last item is an error:
/// [`Error::StreamError`] (Ollama's mid-stream error line), [`Error::StreamTruncated`] (the
/// body ended or broke before `done`), [`Error::StreamStalled`] (no bytes for
/// `stream_idle_timeout`), [`Error::Timeout`] (no first byte within `load_timeout`), or a
/// decoding error. Dropping it closes the connection, which makes Ollama stop generating.
pub struct NdjsonStream<T> {
    body: BodyStream,
    decoder: NdjsonDecoder<T>,
    /// Deadline for the next read: first byte, then idle gap.
    timer: Pin<Box<Sleep>>,
    load_timeout: Duration,
    idle_timeout: Duration,
    got_bytes: bool,
    what: String,
    ended: bool,
}

impl<T> std::fmt::Debug for NdjsonStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonStream")
            .field("what", &self.what)
            .field("got_bytes", &self.got_bytes)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<T: StreamItem> NdjsonStream<T> {
    /// The next item; `None` after the `done` item or after an error was returned.
    pub async fn next(&mut self) -> Option<Result<T>> {
        futures_util::StreamExt::next(self).await
    }

    /// Items decoded so far.
    pub fn received(&self) -> usize {
        self.decoder.received()
    }

    fn yield_item(&mut self, item: Result<T>) -> Poll<Option<Result<T>>> {
        match &item {
            Ok(chunk) if chunk.is_done() => self.ended = true,
            Ok(_) => {}
            Err(_) => self.ended = true,
        }
        Poll::Ready(Some(item))
    }
}

impl<T: StreamItem> Stream for NdjsonStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(item) = this.decoder.next_item() {
                return this.yield_item(item);
            }
            if this.decoder.is_ended() {
                this.ended = true;
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.decoder.feed(&bytes);
                    this.got_bytes = true;
                    let deadline = Instant::now() + this.idle_timeout;
                    this.timer.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Err(e))) => {
                    // A body that breaks off (connection closed or reset mid-chunk) is a
                    // stream that ended before `done`; the transport detail goes to the log.
                    tracing::warn!(what = %this.what, error = %error_chain(&e), "stream body ended with an error");
                    this.ended = true;
                    return Poll::Ready(Some(Err(Error::StreamTruncated {
                        received: this.decoder.received(),
                    })));
                }
                Poll::Ready(None) => this.decoder.finish(),
                Poll::Pending => {
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.ended = true;
                    let err = if this.got_bytes {
                        Error::StreamStalled {
                            after: this.idle_timeout,
                        }
                    } else {
                        Error::Timeout {
                            what: format!("first chunk of {}", this.what),
                            after: this.load_timeout,
                        }
                    };
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_ollamas_text() {
        let s = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(
            error_message(
                s,
                br#"{"error":"option \"num_ctx\" must be of type integer"}"#
            ),
            "option \"num_ctx\" must be of type integer"
        );
        assert_eq!(
            error_message(s, b"  <html>oops</html>\n"),
            "<html>oops</html>"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
        let long = "é".repeat(2000);
        let m = error_message(s, long.as_bytes());
        assert_eq!(m.chars().count(), MAX_ERROR_TEXT_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn config_defaults_and_base_url() {
        let c = ClientConfig::default();
        assert_eq!(c.base_url, "http://127.0.0.1:11434");
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.load_timeout, Duration::from_secs(300));
        assert_eq!(c.stream_idle_timeout, Duration::from_secs(60));
        let client =
            OllamaClient::new(ClientConfig::new("https://example.com:443/ollama/")).unwrap();
        assert_eq!(client.base_url(), "https://example.com:443/ollama");
        for bad in ["", "127.0.0.1:11434", "ftp://x"] {
            assert!(
                matches!(
                    OllamaClient::new(ClientConfig::new(bad)),
                    Err(Error::InvalidHost { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
