//! Bearer tokens: loading them from owner-only files, parsing `Authorization`, and comparing
//! in constant time. Tokens never appear in logs, errors or `Debug` output.

use std::path::Path;

use crate::error::{AgentError, Result};

/// Shortest token accepted: 128 bits of hex. A short token is guessable over the network.
pub const MIN_TOKEN_LEN: usize = 32;
/// Longest token accepted (and longest `Authorization` value looked at).
pub const MAX_TOKEN_LEN: usize = 512;

/// A secret. `Debug` prints its length only.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({} bytes)", self.0.len())
    }
}

impl Token {
    /// A token from memory (tests, benches); the file loader checks the same rules.
    pub fn new(secret: &str) -> std::result::Result<Token, String> {
        let t = secret.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token is {} bytes; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                t.len()
            ));
        }
        if t.len() > MAX_TOKEN_LEN {
            return Err(format!("the token is longer than {MAX_TOKEN_LEN} bytes"));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be printable ASCII without spaces".into());
        }
        Ok(Token(t.as_bytes().to_vec()))
    }

    /// Reads a token file, refusing one that group or others can access.
    pub fn from_file(path: &Path) -> Result<Token> {
        check_secret_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::TokenFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Token::new(&text).map_err(|reason| AgentError::TokenFile {
            path: path.to_owned(),
            reason,
        })
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality with a presented credential.
    pub fn matches(&self, presented: &[u8]) -> bool {
        ct_eq(&self.0, presented)
    }
}

/// Refuses a secret file that group or others may read or write (mode must be 0600 or
/// stricter).
#[cfg(unix)]
pub fn check_secret_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| AgentError::TokenFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(AgentError::TokenFile {
            path: path.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AgentError::TokenFileMode {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Windows ACLs are not checked.
#[cfg(not(unix))]
pub fn check_secret_file(_path: &Path) -> Result<()> {
    Ok(())
}

/// Equality whose running time depends only on `expected.len()`, never on where the first
/// difference is. A length mismatch still walks all of `expected`.
pub fn ct_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != presented.len());
    for (i, e) in expected.iter().enumerate() {
        // An out-of-range index reads a fixed byte, so the loop shape never changes.
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= e ^ p;
    }
    std::hint::black_box(diff) == 0
}

/// The credential in an `Authorization` header value: `Bearer <token>` (scheme
/// case-insensitive, RFC 6750 §2.1). `None` for any other scheme or a malformed value.
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    if value.len() > MAX_TOKEN_LEN + 16 {
        return None;
    }
    let (scheme, rest) = split_once(value, b' ')?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = trim_spaces(rest);
    if token.is_empty() || token.iter().any(|b| !b.is_ascii_graphic()) {
        return None;
    }
    Some(token)
}

fn split_once(v: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = v.iter().position(|b| *b == sep)?;
    Some((&v[..i], &v[i + 1..]))
}

fn trim_spaces(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    None,
    Read,
    Write,
}

/// The answer of [`Tokens::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No or an unknown credential: 401 with `WWW-Authenticate`.
    Unauthorized,
    /// A valid read token on a write route: 403.
    Forbidden,
}

/// The configured tokens; `None` = open (loopback only).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub read: Option<Token>,
    pub write: Option<Token>,
}

impl Tokens {
    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        self.read.is_some() || self.write.is_some()
    }

    /// Decides a request from its `Authorization` header. The write token also reads.
    pub fn check(&self, need: Need, authorization: Option<&[u8]>) -> Decision {
        if need == Need::None || !self.enabled() {
            return Decision::Allow;
        }
        let Some(presented) = authorization.and_then(bearer) else {
            return Decision::Unauthorized;
        };
        // Both comparisons always run, so timing does not say which token was close.
        let is_write = self.write.as_ref().is_some_and(|t| t.matches(presented));
        let is_read = self.read.as_ref().is_some_and(|t| t.matches(presented));
        match need {
            Need::Write if is_write => Decision::Allow,
            Need::Write if is_read => Decision::Forbidden,
            Need::Read if is_write || is_read => Decision::Allow,
            _ => Decision::Unauthorized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr";
    const W: &str = "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww";

    fn tokens() -> Tokens {
        Tokens {
            read: Token::new(R).ok(),
            write: Token::new(W).ok(),
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer a b"), None);
        assert_eq!(bearer(b"Bearer \xffabc"), None);
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"abc", b""));
    }

    #[test]
    fn decisions() {
        let t = tokens();
        let h = |s: &str| format!("Bearer {s}");
        assert_eq!(t.check(Need::Read, None), Decision::Unauthorized);
        assert_eq!(t.check(Need::Read, Some(h(R).as_bytes())), Decision::Allow);
        assert_eq!(t.check(Need::Read, Some(h(W).as_bytes())), Decision::Allow);
        assert_eq!(
            t.check(Need::Write, Some(h(R).as_bytes())),
            Decision::Forbidden
        );
        assert_eq!(t.check(Need::Write, Some(h(W).as_bytes())), Decision::Allow);
        assert_eq!(
            t.check(Need::Read, Some(b"Bearer nope-nope")),
            Decision::Unauthorized
        );
        assert_eq!(t.check(Need::None, None), Decision::Allow);
        assert_eq!(Tokens::default().check(Need::Write, None), Decision::Allow);
    }

    #[test]
    fn short_tokens_are_refused_and_debug_hides_the_secret() {
        assert!(Token::new("short").is_err());
        let t = Token::new(R).ok();
        let shown = format!("{t:?}");
        assert!(!shown.contains(R), "{shown}");
    }
}
