//! Transport edge cases of `OllamaClient` against a raw TCP server that writes HTTP/1.1 by
//! hand: bodies split byte by byte, stalls, truncated bodies, error statuses, refused
//! connections. Behaviour against a realistic server is tested with the simulator elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use ollama_sim::bounded;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use yollayah_core::Error;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::types::{ChatRequest, KeepAlive, Message, Options};

/// What the fake server does after reading the request.
enum Act {
    /// Write these bytes in one go.
    Write(Vec<u8>),
    /// Write each byte separately, flushing in between.
    Bytewise(Vec<u8>),
    /// Keep the connection open and silent until the test ends.
    Hold,
    /// Stay silent this long, then go on.
    Pause(Duration),
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// Serves exactly one connection with `acts`; the request arrives on the returned channel.
async fn serve(acts: Vec<Act>) -> (SocketAddr, oneshot::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        sock.set_nodelay(true).ok();
        let req = read_request(&mut sock).await;
        tx.send(req).ok();
        for act in acts {
            match act {
                Act::Write(b) => {
                    if sock.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Act::Bytewise(b) => {
                    for byte in b {
                        if sock.write_all(&[byte]).await.is_err() || sock.flush().await.is_err() {
                            return;
                        }
                    }
                }
                Act::Hold => std::future::pending::<()>().await,
                Act::Pause(d) => tokio::time::sleep(d).await,
            }
        }
        // Dropping the socket closes the connection.
    });
    (addr, rx)
}

async fn read_request(sock: &mut TcpStream) -> Request {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut tmp).await.expect("read request");
        assert!(n > 0, "client closed before sending a request");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut req = Request {
        head,
        body: Vec::new(),
    };
    let len: usize = req
        .header("content-length")
        .map_or(0, |v| v.parse().expect("content-length"));
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.expect("read body");
        assert!(n > 0);
        body.extend_from_slice(&tmp[..n]);
    }
    req.body = body;
    req
}

fn response(status: &str, content_type: &str, body: &str) -> Act {
    Act::Write(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Headers of a chunked NDJSON 200 answer.
fn chunked_head() -> Act {
    Act::Write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
    )
}

/// One HTTP chunk per byte of `body`.
fn chunk_per_byte(body: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for b in body.bytes() {
        out.extend_from_slice(b"1\r\n");
        out.push(b);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn http_chunk(body: &str) -> Act {
    Act::Write(format!("{:x}\r\n{body}\r\n", body.len()).into_bytes())
}

const END_CHUNKS: &[u8] = b"0\r\n\r\n";

fn chunk_line(content: &str, done: bool) -> String {
    let mut v = json!({
        "model": "llama3.2:3b",
        "created_at": "2026-11-21T10:00:00.123456789Z",
        "message": {"role": "assistant", "content": content},
        "done": done,
    });
    if done {
        v["done_reason"] = json!("stop");
        v["eval_count"] = json!(3);
        v["eval_duration"] = json!(1_000_000);
    }
    format!("{v}\n")
}

fn client(addr: SocketAddr) -> OllamaClient {
    client_with(addr, |_| {})
}

fn client_with(addr: SocketAddr, tweak: impl FnOnce(&mut ClientConfig)) -> OllamaClient {
    let mut cfg = ClientConfig::new(format!("http://{addr}"));
    tweak(&mut cfg);
    OllamaClient::new(cfg).expect("client")
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        model: "llama3.2:3b".into(),
        messages: vec![Message::new("user", "Hi, 🌮?")],
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn version_sends_json_accept_and_no_origin() {
    bounded(async {
        let (addr, req) = serve(vec![response(
            "200 OK",
            "application/json; charset=utf-8",
            r#"{"version":"0.33.0"}"#,
        )])
        .await;
        let v = client(addr).version().await.expect("version");
        assert_eq!(v.version, "0.33.0");
        let req = req.await.expect("request");
        assert!(
            req.head.starts_with("GET /api/version HTTP/1.1\r\n"),
            "{}",
            req.head
        );
        assert_eq!(req.header("accept").as_deref(), Some("application/json"));
        assert_eq!(req.header("origin"), None);
        assert!(req.body.is_empty());
    })
    .await;
}

#[tokio::test]
async fn chat_stream_survives_one_http_chunk_per_byte() {
    bounded(async {
        let body = [
            chunk_line("Hé", false),
            "\r\n".to_owned(),
            chunk_line("llo 🌮 日本", false),
            chunk_line("", true),
        ]
        .concat();
        let mut bytes = chunk_per_byte(&body);
        bytes.extend_from_slice(END_CHUNKS);
        let (addr, req) = serve(vec![chunked_head(), Act::Bytewise(bytes)]).await;
        let mut stream = client(addr).chat_stream(&chat_req()).await.expect("stream");
        let mut text = String::new();
        let mut last = None;
        while let Some(item) = stream.next().await {
            let chunk = item.expect("chunk");
            text.push_str(&chunk.message.as_ref().expect("message").content);
            last = Some(chunk);
        }
        assert_eq!(text, "Héllo 🌮 日本");
        let last = last.expect("a final chunk");
        assert!(last.done);
        assert_eq!(last.metrics.tokens_per_second(), Some(3000.0));
        assert_eq!(stream.received(), 3);

        let req = req.await.expect("request");
        assert!(req.head.starts_with("POST /api/chat HTTP/1.1\r\n"));
        assert_eq!(
            req.header("accept").as_deref(),
            Some("application/x-ndjson")
        );
        assert_eq!(
            req.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(req.header("origin"), None);
        let sent = req.json();
        assert_eq!(sent["model"], "llama3.2:3b");
        assert_eq!(sent["messages"][0]["content"], "Hi, 🌮?");
        // Absent `stream` means streaming to Ollama; nothing else is added.
        assert!(sent.get("stream").is_none());
    })
    .await;
}

#[tokio::test]
async fn chat_stream_close_delimited_body_many_lines_per_read() {
    bounded(async {
        let body = [chunk_line("a", false), chunk_line("b", false), chunk_line("", true)].concat();
        let (addr, _req) = serve(vec![Act::Write(
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n{body}")
                .into_bytes(),
        )])
        .await;
        let mut req = chat_req();
        req.stream = Some(false); // overridden: chat_stream always streams
        let mut stream = client(addr).chat_stream(&req).await.expect("stream");
        let mut n = 0;
        while let Some(item) = stream.next().await {
            item.expect("chunk");
            n += 1;
        }
        assert_eq!(n, 3);
    })
    .await;
}

#[tokio::test]
async fn stream_without_done_is_truncated() {
    bounded(async {
        // Clean end of a close-delimited body.
        let body = [chunk_line("a", false), chunk_line("b", false)].concat();
        let (addr, _r) = serve(vec![Act::Write(
            format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}").into_bytes(),
        )])
        .await;
        let mut stream = client(addr).chat_stream(&chat_req()).await.expect("stream");
        assert!(stream.next().await.expect("a").is_ok());
        assert!(stream.next().await.expect("b").is_ok());
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::StreamTruncated { received: 2 }))
        ));
        assert!(stream.next().await.is_none());

        // Chunked body cut off without its terminating chunk (Ollama crashed).
        let (addr, _r) = serve(vec![chunked_head(), http_chunk(&chunk_line("a", false))]).await;
        let mut stream = client(addr).chat_stream(&chat_req()).await.expect("stream");
        assert!(stream.next().await.expect("a").is_ok());
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::StreamTruncated { received: 1 }))
        ));
        assert!(stream.next().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn mid_stream_error_line_keeps_ollamas_text() {
    bounded(async {
        let msg = "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check ollama server logs for details";
        let (addr, _r) = serve(vec![
            chunked_head(),
            http_chunk(&chunk_line("a", false)),
            http_chunk(&format!("{}\n", json!({ "error": msg }))),
            Act::Write(END_CHUNKS.to_vec()),
        ])
        .await;
        let mut stream = client(addr).chat_stream(&chat_req()).await.expect("stream");
        assert!(stream.next().await.expect("a").is_ok());
        match stream.next().await {
            Some(Err(Error::StreamError { message })) => assert_eq!(message, msg),
            other => panic!("{other:?}"),
        }
        assert!(stream.next().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn stalled_stream_is_reported_after_the_idle_timeout() {
    bounded(async {
        let (addr, _r) = serve(vec![
            chunked_head(),
            http_chunk(&chunk_line("a", false)),
            Act::Hold,
        ])
        .await;
        let idle = Duration::from_millis(200);
        let c = client_with(addr, |c| c.stream_idle_timeout = idle);
        let mut stream = c.chat_stream(&chat_req()).await.expect("stream");
        assert!(stream.next().await.expect("a").is_ok());
        match stream.next().await {
            Some(Err(Error::StreamStalled { after })) => assert_eq!(after, idle),
            other => panic!("{other:?}"),
        }
        assert!(stream.next().await.is_none());
    })
    .await;
}

/// The idle clock restarts with every read: a slow but steady stream that lasts many idle
/// timeouts in all is not a stall, and the silence after it is, one idle timeout later.
#[tokio::test]
async fn a_steady_trickle_longer_than_the_idle_timeout_is_not_a_stall() {
    bounded(async {
        let idle = Duration::from_millis(300);
        let mut acts = vec![chunked_head()];
        for i in 0..8 {
            acts.push(http_chunk(&chunk_line(&format!("t{i}"), false)));
            acts.push(Act::Pause(Duration::from_millis(120)));
        }
        acts.push(Act::Hold);
        let (addr, _r) = serve(acts).await;
        let c = client_with(addr, |c| c.stream_idle_timeout = idle);
        let mut stream = c.chat_stream(&chat_req()).await.expect("stream");
        for i in 0..8 {
            let chunk = stream.next().await.expect("a chunk");
            assert!(chunk.is_ok(), "chunk {i}: {chunk:?}");
        }
        let last = std::time::Instant::now();
        match stream.next().await {
            Some(Err(Error::StreamStalled { after })) => assert_eq!(after, idle),
            other => panic!("{other:?}"),
        }
        let waited = last.elapsed();
        assert!(
            waited >= idle - Duration::from_millis(130) && waited < idle * 3,
            "stall reported {waited:?} after the last chunk"
        );
    })
    .await;
}

#[tokio::test]
async fn silent_server_hits_the_load_timeout() {
    bounded(async {
        // No answer at all: the wait for headers is bounded by load_timeout.
        let (addr, _r) = serve(vec![Act::Hold]).await;
        let load = Duration::from_millis(200);
        let c = client_with(addr, |c| c.load_timeout = load);
        match c.chat_stream(&chat_req()).await {
            Err(Error::Timeout { what, after }) => {
                assert_eq!(what, "POST /api/chat");
                assert_eq!(after, load);
            }
            other => panic!("{other:?}"),
        }

        // Headers, then silence: the first chunk is still under the load clock, not idle.
        let (addr, _r) = serve(vec![chunked_head(), Act::Hold]).await;
        let c = client_with(addr, |c| {
            c.load_timeout = load;
            c.stream_idle_timeout = Duration::from_secs(3600);
        });
        let mut stream = c.chat_stream(&chat_req()).await.expect("headers arrive");
        match stream.next().await {
            Some(Err(Error::Timeout { what, after })) => {
                assert_eq!(what, "first chunk of POST /api/chat");
                assert_eq!(after, load);
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn quick_calls_hit_the_request_timeout() {
    bounded(async {
        let (addr, _r) = serve(vec![Act::Hold]).await;
        let t = Duration::from_millis(200);
        let c = client_with(addr, |c| c.request_timeout = t);
        match c.ps().await {
            Err(Error::Timeout { what, after }) => {
                assert_eq!(what, "GET /api/ps");
                assert_eq!(after, t);
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn error_status_carries_ollamas_error_field() {
    bounded(async {
        let (addr, _r) = serve(vec![response(
            "500 Internal Server Error",
            "application/json; charset=utf-8",
            r#"{"error":"option \"num_ctx\" must be of type integer"}"#,
        )])
        .await;
        match client(addr).chat_stream(&chat_req()).await {
            Err(Error::Api { status, message }) => {
                assert_eq!(status, 500);
                assert_eq!(message, "option \"num_ctx\" must be of type integer");
            }
            other => panic!("{other:?}"),
        }

        let (addr, _r) = serve(vec![response(
            "404 Not Found",
            "application/json",
            r#"{"error":"model 'nope' not found"}"#,
        )])
        .await;
        match client(addr).show("nope").await {
            Err(Error::Api { status, message }) => {
                assert_eq!((status, message.as_str()), (404, "model 'nope' not found"));
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn non_json_error_body_is_kept_raw_and_short() {
    bounded(async {
        let html = format!("<html><body>{}</body></html>", "x".repeat(5000));
        let (addr, _r) = serve(vec![response("502 Bad Gateway", "text/html", &html)]).await;
        match client(addr).tags().await {
            Err(Error::Api { status, message }) => {
                assert_eq!(status, 502);
                assert!(message.starts_with("<html><body>xxx"), "{message}");
                assert!(message.chars().count() <= 513, "{}", message.len());
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        match client(addr).version().await {
            Err(Error::Unreachable { url, reason }) => {
                assert_eq!(url, format!("http://{addr}"));
                assert!(reason.to_lowercase().contains("refused"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn load_sends_an_empty_generate_with_options_and_keep_alive() {
    bounded(async {
        let (addr, req) = serve(vec![response(
            "200 OK",
            "application/json",
            r#"{"model":"llama3.2:3b","created_at":"2026-11-21T10:00:00Z","response":"","done":true,"done_reason":"load"}"#,
        )])
        .await;
        let mut options = Options::new();
        options.insert("num_ctx".into(), json!(8192));
        let chunk = client(addr)
            .load("llama3.2:3b", Some(KeepAlive::FOREVER), Some(&options))
            .await
            .expect("load");
        assert_eq!(chunk.done_reason.as_deref(), Some("load"));
        let req = req.await.expect("request");
        assert!(req.head.starts_with("POST /api/generate HTTP/1.1\r\n"));
        assert_eq!(
            req.json(),
            json!({"model":"llama3.2:3b","stream":false,"keep_alive":-1,"options":{"num_ctx":8192}})
        );
    })
    .await;
}

#[tokio::test]
async fn unload_sends_keep_alive_zero() {
    bounded(async {
        let (addr, req) = serve(vec![response(
            "200 OK",
            "application/json",
            r#"{"model":"m","created_at":"2026-11-21T10:00:00Z","response":"","done":true,"done_reason":"unload"}"#,
        )])
        .await;
        client(addr).unload("m").await.expect("unload");
        assert_eq!(
            req.await.expect("request").json(),
            json!({"model":"m","stream":false,"keep_alive":0})
        );
    })
    .await;
}

#[tokio::test]
async fn non_streaming_chat_asks_for_one_object() {
    bounded(async {
        let (addr, req) = serve(vec![response(
            "200 OK",
            "application/json",
            chunk_line("whole reply", true).trim_end(),
        )])
        .await;
        let reply = client(addr).chat(&chat_req()).await.expect("chat");
        assert_eq!(reply.message.expect("message").content, "whole reply");
        assert!(reply.done);
        assert_eq!(req.await.expect("request").json()["stream"], json!(false));
    })
    .await;
}
