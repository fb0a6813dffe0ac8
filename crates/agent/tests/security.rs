//! The agent's security rules against a real listener: tokens on every route, token files,
//! body limits, content types, Host checks in open mode, slow clients, and HTTPS.

mod common;

use std::time::{Duration, Instant};

use common::{Options, READ, WRITE, http, rig, secret_file};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yollayah_agent::{AgentConfig, AgentError, Limits};

const ROUTES: [(&str, &str); 6] = [
    ("GET", "/metrics"),
    ("GET", "/api/v1/state"),
    ("GET", "/api/v1/events"),
    ("POST", "/api/v1/warm"),
    ("POST", "/api/v1/unload"),
    ("GET", "/no-such-route"),
];

async fn call(url: &str, method: &str, path: &str, auth: Option<&str>) -> reqwest::Response {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http().request(m, format!("{url}{path}"));
    if method == "POST" {
        req = req.header("content-type", "application/json").body("{}");
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_healthz_needs_a_valid_token() {
    let r = rig(Options::default()).await;
    let h = call(&r.url, "GET", "/healthz", None).await;
    assert_eq!(h.status(), StatusCode::OK);
    for (method, path) in ROUTES {
        let none = call(&r.url, method, path, None).await;
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let challenge = none.headers()["www-authenticate"].to_str().unwrap_or("");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        for wrong in [
            "Bearer nope-nope-nope-nope-nope-nope-nope".to_owned(),
            format!("Bearer {}", &READ[..READ.len() - 1]),
            format!("Bearer {READ}x"),
            format!("Basic {READ}"),
            READ.to_owned(),
        ] {
            let resp = call(&r.url, method, path, Some(&wrong)).await;
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {wrong}"
            );
        }
    }
    r.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_token_reads_and_cannot_write_and_write_token_does_both() {
    let r = rig(Options::default()).await;
    let read = format!("Bearer {READ}");
    let write = format!("bearer {WRITE}");
    for (method, path) in ROUTES {
        let resp = call(&r.url, method, path, Some(&read)).await;
        let want = match (method, path) {
            ("POST", _) => StatusCode::FORBIDDEN,
            (_, "/no-such-route") => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        };
        assert_eq!(resp.status(), want, "{method} {path} with the read token");
    }
    // The write token also reads.
    let m = call(&r.url, "GET", "/metrics", Some(&write)).await;
    assert_eq!(m.status(), StatusCode::OK);
    let state: serde_json::Value = call(&r.url, "GET", "/api/v1/state", Some(&read))
        .await
        .json()
        .await
        .expect("state json");
    assert_eq!(state["type"], "snapshot");
    let unload = call(&r.url, "POST", "/api/v1/unload", Some(&write)).await;
    assert_eq!(unload.status(), StatusCode::OK);
    let warm = call(&r.url, "POST", "/api/v1/warm", Some(&write)).await;
    assert_eq!(warm.status(), StatusCode::OK);
    let body: serde_json::Value = warm.json().await.expect("warm json");
    assert_eq!(body["placement"], "gpu", "{body}");
    assert!(
        r.sim
            .loaded_models()
            .iter()
            .any(|m| m == body["model"].as_str().unwrap_or(""))
    );
    // A wrong method on a known route is 405 (after the token check).
    let wrong = call(&r.url, "GET", "/api/v1/warm", Some(&write)).await;
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    r.cancel.cancel();
}

#[tokio::test]
async fn token_files_must_be_owner_only_and_tokens_are_required_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_r = secret_file(dir.path(), "r", READ, 0o600);
    let good_w = secret_file(dir.path(), "w", WRITE, 0o600);
    let cancel = tokio_util::sync::CancellationToken::new();
    let sim = ollama_sim::start(ollama_sim::Scenario::default())
        .await
        .expect("sim");
    let wd = common::watchdog_on(&sim, Duration::from_secs(5), &cancel);
    let start = |c: AgentConfig| yollayah_agent::start(c, wd.clone(), cancel.clone());

    for mode in [0o644, 0o640, 0o604, 0o660] {
        let loose = secret_file(dir.path(), &format!("loose{mode:o}"), READ, mode);
        let mut c = AgentConfig::local(0);
        c.read_token_file = Some(loose.clone());
        c.write_token_file = Some(good_w.clone());
        let err = start(c).await.expect_err("a loose token file is refused");
        assert!(matches!(err, AgentError::TokenFileMode { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("chmod 600"), "{msg}");
        assert!(
            !msg.contains(READ),
            "the error must not show the token: {msg}"
        );
    }
    // Off loopback: both token files are required.
    let mut open = AgentConfig::local(0);
    open.listen = "0.0.0.0:0".parse().expect("addr");
    let err = start(open.clone())
        .await
        .expect_err("no tokens off loopback");
    assert!(matches!(err, AgentError::TokensRequired { .. }), "{err}");
    open.read_token_file = Some(good_r.clone());
    let err = start(open.clone())
        .await
        .expect_err("one token is not enough");
    assert!(matches!(err, AgentError::TokensRequired { .. }), "{err}");
    // The same secret twice would make every reader a writer.
    let same = secret_file(dir.path(), "same", READ, 0o600);
    open.write_token_file = Some(same);
    let err = start(open.clone()).await.expect_err("same tokens");
    assert!(matches!(err, AgentError::SameTokens), "{err}");
    let short = secret_file(dir.path(), "short", "abc", 0o600);
    open.write_token_file = Some(short);
    let err = start(open.clone()).await.expect_err("short token");
    assert!(matches!(err, AgentError::TokenFile { .. }), "{err}");
    let missing = dir.path().join("missing");
    open.write_token_file = Some(missing);
    assert!(start(open.clone()).await.is_err());
    // With good files it starts, on every address.
    open.write_token_file = Some(good_w);
    let agent = start(open)
        .await
        .expect("starts with owner-only token files");
    assert!(!agent.local_addr().ip().is_loopback());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_wrongly_typed_bodies_are_refused() {
    let r = rig(Options::default()).await;
    let auth = format!("Bearer {WRITE}");
    let url = format!("{}/api/v1/warm", r.url);
    let big = vec![b' '; 5000];
    let declared = http()
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, no Content-Length: the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let chunked = http()
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("send");
    assert_eq!(chunked.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let untyped = http()
        .post(&url)
        .header("authorization", &auth)
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bad = http()
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let other = http()
        .post(&url)
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(r#"{"model":"some-other:7b"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(other.status(), StatusCode::CONFLICT);
    // Request heads are bounded too.
    let huge_header = http()
        .get(format!("{}/healthz", r.url))
        .header("x-filler", "a".repeat(64 * 1024))
        .send()
        .await;
    assert!(
        huge_header.map_or(true, |r| r.status()
            == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        "a 64 KiB header must be refused"
    );
    r.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_localhost_host_names_are_served() {
    let r = rig(Options {
        tokens: false,
        ..Options::default()
    })
    .await;
    let ok = http()
        .get(format!("{}/metrics", r.url))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), StatusCode::OK);
    let port = r.agent.local_addr().port();
    let local = http()
        .get(format!("http://localhost:{port}/api/v1/state"))
        .send()
        .await
        .expect("send");
    assert_eq!(local.status(), StatusCode::OK);
    // A DNS-rebinding page reaches 127.0.0.1 under its own name.
    let rebound = http()
        .get(format!("{}/api/v1/state", r.url))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .expect("send");
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    r.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_off_and_do_not_block_others() {
    let r = rig(Options {
        limits: Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let addr = r.agent.local_addr();
    // 50 clients that send a request head one header every 300 ms, forever.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .expect("write");
        slow.push(s);
    }
    let dribble = tokio::spawn(async move {
        let started = Instant::now();
        let mut cut = vec![None; slow.len()];
        while started.elapsed() < Duration::from_secs(6) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for (i, s) in slow.iter_mut().enumerate() {
                if cut[i].is_none() && s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    cut[i] = Some(started.elapsed());
                }
            }
        }
        // A closed connection reads EOF (or a reset) once the server cut it.
        for (i, s) in slow.iter_mut().enumerate() {
            let mut buf = [0u8; 512];
            let closed =
                match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => true,
                    Ok(Ok(_)) => true, // a 408 answer, then close
                    Err(_) => false,
                };
            if closed && cut[i].is_none() {
                cut[i] = Some(started.elapsed());
            }
        }
        cut
    });
    // Meanwhile a normal client is served promptly, again and again.
    let auth = format!("Bearer {READ}");
    for _ in 0..20 {
        let t = Instant::now();
        let resp = http()
            .get(format!("{}/metrics", r.url))
            .header("authorization", &auth)
            .send()
            .await
            .expect("normal client");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut = dribble.await.expect("dribble task");
    for (i, c) in cut.iter().enumerate() {
        let c = c.unwrap_or_else(|| panic!("slow client {i} was never cut off"));
        assert!(
            c < Duration::from_secs(5),
            "slow client {i} cut only after {c:?}"
        );
    }
    r.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed cert");
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    let key_path = secret_file(dir.path(), "key.pem", &cert.key_pair.serialize_pem(), 0o600);
    let r = rig(Options {
        tls: Some((cert_path.clone(), key_path.clone())),
        ..Options::default()
    })
    .await;
    assert!(r.url.starts_with("https://"));
    let port = r.agent.local_addr().port();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("root"),
        )
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let h = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(h.status(), StatusCode::OK);
    let none = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("https");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let m = client
        .get(format!("{base}/metrics"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("https");
    assert_eq!(m.status(), StatusCode::OK);
    assert!(m.text().await.expect("body").contains("ollama_up 1"));
    // Plain HTTP to the HTTPS port gets no answer.
    let plain = http()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.map(|p| p.status().is_success()).unwrap_or(false));
    // A world-readable key is refused like a token file.
    let loose_key = secret_file(
        dir.path(),
        "loose.pem",
        &cert.key_pair.serialize_pem(),
        0o644,
    );
    let mut c = AgentConfig::local(0);
    c.tls_cert = Some(cert_path);
    c.tls_key = Some(loose_key);
    let err = yollayah_agent::start(c, r.watchdog.clone(), r.cancel.clone())
        .await
        .expect_err("loose key");
    assert!(matches!(err, AgentError::TokenFileMode { .. }), "{err}");
    r.cancel.cancel();
}
