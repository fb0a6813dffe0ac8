//! The body of the `agent_http` fuzz target (`fuzz/fuzz_targets/agent_http.rs`), here rather
//! than in `fuzz/` so that a normal `cargo test` replays the committed corpus and random
//! mutations of it through the very same code (`tests/fuzz_replay.rs`). Not an API: the
//! assertions are the fuzzer's oracle, so this module panics on purpose when a parser breaks
//! its contract.

use hyper::Method;

use crate::auth::{Decision, MAX_TOKEN_LEN, Need, Token, Tokens, bearer};
use crate::negotiate::{MAX_BODY, negotiate, parse_action};
use crate::server::{Refusal, Route, action_head, admit, loopback_host};

/// The read token the oracle configures.
pub const READ: &str = "read-0123456789abcdef0123456789abcdef";
/// The write token the oracle configures.
pub const WRITE: &str = "write-0123456789abcdef0123456789abcdef";

/// Headers looked at per request; hyper's own default limit is 100.
const MAX_HEADERS: usize = 64;

/// One input: a raw HTTP/1.1 request (head and body), as a client would send it.
///
/// The head is split by `httparse`, the parser hyper itself uses, so every later step sees what
/// the server would: the method and path hyper would hand over, then every parser of ours on
/// the request path — route and admission (`Host` in open mode, `Authorization` with both
/// token sets), `Accept` negotiation, the write routes' `Content-Type`/`Content-Length` check
/// and their JSON body. The same bytes also go straight into each parser, so they are fuzzed
/// even when the input is not a well-formed request.
pub fn agent_http(data: &[u8]) {
    raw_parsers(data);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = req.parse(data) else {
        return;
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return;
    };
    // What hyper makes of the request line; it answers 400 itself to anything these refuse.
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let Ok(uri) = target.parse::<hyper::Uri>() else {
        return;
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let host = header("host");
    let authorization = header("authorization");
    let body = &data[head_len..];

    let tokens = Tokens {
        read: Token::new(READ).ok(),
        write: Token::new(WRITE).ok(),
    };
    let presented = authorization.and_then(bearer);
    let is_read = presented == Some(READ.as_bytes());
    let is_write = presented == Some(WRITE.as_bytes());
    let path = uri.path();
    match admit(&tokens, &method, path, host, authorization) {
        Ok(Route::Healthz) => {
            assert!(method == Method::GET || method == Method::HEAD, "{method}");
        }
        Ok(route @ (Route::Warm | Route::Unload)) => {
            assert!(is_write, "{route:?} admitted without the write token");
            assert_eq!(method, Method::POST);
            if action_head(header("content-type"), header("content-length")).is_ok() {
                // The server reads at most MAX_BODY + 1 bytes (hyper's `Limited`).
                let limited = &body[..body.len().min(MAX_BODY + 1)];
                if let Ok(req) = parse_action(limited) {
                    assert!(limited.len() <= MAX_BODY);
                    if let Some(m) = req.model {
                        assert!(m.len() <= limited.len());
                    }
                }
            }
        }
        Ok(Route::NotFound) => panic!("an unknown path was admitted: {path:?}"),
        Ok(route) => {
            assert!(is_read || is_write, "{route:?} admitted without a token");
            assert_eq!(method, Method::GET);
            if route == Route::Metrics {
                let _ = negotiate(header("accept"));
            }
        }
        Err(Refusal::Unauthorized { presented: p }) => {
            assert_eq!(p, authorization.is_some());
            assert!(!is_read && !is_write, "a valid token was refused");
            assert_ne!(path, "/healthz");
        }
        Err(Refusal::ReadTokenWrites) => assert!(is_read && !is_write),
        Err(Refusal::NotFound) => assert!(is_read || is_write),
        // /healthz needs no token, so its wrong method is said to anyone.
        Err(Refusal::Method { .. }) => assert!(is_read || is_write || path == "/healthz"),
        Err(Refusal::ForeignHost) => panic!("tokens are configured: open-mode refusal"),
    }

    // Open mode (loopback, no tokens): only the Host header guards it.
    match admit(&Tokens::default(), &method, path, host, authorization) {
        Err(Refusal::ForeignHost) => assert!(!loopback_host(host) && path != "/healthz"),
        Err(Refusal::Unauthorized { .. } | Refusal::ReadTokenWrites) => {
            panic!("open mode asked for a token")
        }
        Ok(_) | Err(Refusal::NotFound | Refusal::Method { .. }) => {
            assert!(loopback_host(host) || path == "/healthz");
        }
    }
}

/// Each parser on the raw bytes, with its own contract.
fn raw_parsers(data: &[u8]) {
    if let Some(token) = bearer(data) {
        assert!(!token.is_empty());
        assert!(token.iter().all(u8::is_ascii_graphic));
        assert!(data.len() > token.len());
        assert!(data.len() <= MAX_TOKEN_LEN + 16);
    }
    let tokens = Tokens {
        read: Token::new(READ).ok(),
        write: Token::new(WRITE).ok(),
    };
    let presented = bearer(data);
    for need in [Need::Read, Need::Write] {
        let is_read = presented == Some(READ.as_bytes());
        let is_write = presented == Some(WRITE.as_bytes());
        match tokens.check(need, Some(data)) {
            Decision::Allow => assert!(is_write || (need == Need::Read && is_read)),
            Decision::Forbidden => assert!(need == Need::Write && is_read),
            Decision::Unauthorized => assert!(!is_read && !is_write),
        }
    }
    assert_eq!(tokens.check(Need::None, Some(data)), Decision::Allow);
    // A token file's text: a token that loads matches itself, trimmed, and nothing shorter.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = Token::new(text) {
            let secret = text.trim().as_bytes();
            assert!(t.matches(secret));
            assert!(!t.matches(&secret[..secret.len() - 1]));
        }
    }
    let _ = negotiate(Some(data));
    let _ = loopback_host(Some(data));
    let _ = action_head(Some(data), Some(data));
    if let Ok(req) = parse_action(data) {
        assert!(data.len() <= MAX_BODY);
        if let Some(m) = req.model {
            assert!(m.len() <= data.len());
        }
    }
}
