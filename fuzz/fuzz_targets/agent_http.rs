//! Fuzz target: every parser of ours on the agent's request path — the `Authorization` header
//! (bearer extraction and the token decision), `Accept` negotiation for `/metrics`, and the
//! JSON body of `POST /api/v1/warm|unload`. Never panics; a request is allowed only with the
//! exact token, and only an exact write token writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_agent::auth::{Decision, Need, Token, Tokens, bearer};
use yollayah_agent::negotiate::{MAX_BODY, negotiate, parse_action};

const READ: &str = "read-0123456789abcdef0123456789abcdef";
const WRITE: &str = "write-0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    // Three fields split at the first two 0xFF bytes (never valid in a header value anyway).
    let mut parts = data.splitn(3, |b| *b == 0xff);
    let authorization = parts.next().unwrap_or_default();
    let accept = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    if let Some(token) = bearer(authorization) {
        assert!(!token.is_empty());
        assert!(token.iter().all(u8::is_ascii_graphic));
        assert!(authorization.len() > token.len());
    }
    let tokens = Tokens {
        read: Token::new(READ).ok(),
        write: Token::new(WRITE).ok(),
    };
    let presented = bearer(authorization);
    for need in [Need::Read, Need::Write] {
        let d = tokens.check(need, Some(authorization));
        let is_read = presented == Some(READ.as_bytes());
        let is_write = presented == Some(WRITE.as_bytes());
        match d {
            Decision::Allow => assert!(is_write || (need == Need::Read && is_read)),
            Decision::Forbidden => assert!(need == Need::Write && is_read),
            Decision::Unauthorized => assert!(!is_read && !is_write),
        }
    }
    assert_eq!(tokens.check(Need::None, Some(authorization)), Decision::Allow);

    let _ = negotiate(Some(accept));

    match parse_action(body) {
        Ok(req) => {
            assert!(body.len() <= MAX_BODY);
            if let Some(m) = req.model {
                assert!(m.len() <= body.len());
            }
        }
        Err(_) => {}
    }
});
