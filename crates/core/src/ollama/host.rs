//! `OLLAMA_HOST` resolution with the same rules as the official client (`envconfig.Host()`,
//! fact sheet §9), so Yollayah talks to exactly the server that `ollama` itself would.
//!
//! The rules are Go's, including its quirks: a port-only value (`:1234`) keeps an empty host,
//! a scheme changes the default port to the scheme's, and an invalid port silently falls back
//! to the default (with a warning). [`OllamaHost::connectable_url`] then turns listen-style
//! addresses (`0.0.0.0`, `::`, empty) into ones a client can connect to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// The environment variable the official client and server read.
pub const ENV_VAR: &str = "OLLAMA_HOST";

/// Port used when neither the value nor its scheme implies one.
pub const DEFAULT_PORT: u16 = 11434;

/// A resolved Ollama address, in the parts Go's `url.URL` would hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OllamaHost {
    /// `http` unless the value named another scheme (kept as written, like Go does).
    pub scheme: String,
    /// Host name or IP literal without brackets; empty for a port-only value such as `:1234`.
    pub host: String,
    pub port: u16,
    /// Path prefix for servers behind a reverse proxy: empty or `/prefix` (never a trailing `/`).
    pub path: String,
}

impl Default for OllamaHost {
    fn default() -> Self {
        OllamaHost {
            scheme: "http".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: DEFAULT_PORT,
            path: String::new(),
        }
    }
}

impl OllamaHost {
    /// The canonical form, as the official client prints it (`http://127.0.0.1:11434`,
    /// `https://example.com:443/ollama`, `http://[::1]:11434`, `http://:1234`).
    pub fn url(&self) -> String {
        self.format_with_host(&self.host)
    }

    /// Like [`url`](Self::url), but with listen-only addresses replaced by loopback:
    /// `0.0.0.0` → `127.0.0.1`, `::` → `::1`, and the empty host of `:1234` → `127.0.0.1`
    /// (Go dials the local machine for an empty host; Rust URL parsers reject it).
    pub fn connectable_url(&self) -> String {
        self.format_with_host(&connectable_host(&self.host))
    }

    /// Whether the connectable address is on this machine, so that proxies must be bypassed
    /// (Go's `ProxyFromEnvironment` never proxies loopback either).
    pub fn is_loopback(&self) -> bool {
        let host = connectable_host(&self.host);
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn format_with_host(&self, host: &str) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            join_host_port(host, self.port),
            self.path
        )
    }
}

/// Parses an `OLLAMA_HOST` value. Empty (after trimming) means `http://127.0.0.1:11434`.
///
/// Fails only when the result could never be connected to: a scheme other than http(s), or a
/// host that is not valid in a URL. The parsing itself never rejects anything, like Go's.
pub fn parse_host(raw: &str) -> Result<OllamaHost> {
    let parsed = parse_like_go(raw);
    validate(raw, &parsed)?;
    Ok(parsed)
}

/// Reads and parses `OLLAMA_HOST`; unset means the default address.
pub fn from_env() -> Result<OllamaHost> {
    match std::env::var(ENV_VAR) {
        Ok(v) => parse_host(&v),
        Err(std::env::VarError::NotPresent) => parse_host(""),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::InvalidHost {
            value: v.to_string_lossy().into_owned(),
            reason: format!("{ENV_VAR} is not valid UTF-8"),
        }),
    }
}

fn parse_like_go(raw: &str) -> OllamaHost {
    // envconfig trims spaces, then quotes, then spaces again, so `" \"1.2.3.4\" "` works.
    let s = raw.trim().trim_matches(|c| c == '"' || c == '\'').trim();

    let mut default_port = DEFAULT_PORT;
    let (scheme, hostport) = match s.split_once("://") {
        None if s == "ollama.com" => ("https", "ollama.com:443"),
        None => ("http", s),
        Some((scheme, rest)) => {
            // Case-sensitive, like Go's switch: `HTTP://x` keeps the 11434 default.
            match scheme {
                "http" => default_port = 80,
                "https" => default_port = 443,
                _ => {}
            }
            (scheme, rest)
        }
    };
    let (hostport, path) = hostport.split_once('/').unwrap_or((hostport, ""));

    let (host, port_text) = match split_host_port(hostport) {
        Some((h, p)) => (h.to_owned(), Some(p)),
        None => {
            let unbracketed = hostport.trim_matches(|c| c == '[' || c == ']');
            let host = match unbracketed.parse::<IpAddr>() {
                Ok(ip) => go_ip_string(ip),
                Err(_) if hostport.is_empty() => "127.0.0.1".to_owned(),
                Err(_) => hostport.to_owned(),
            };
            (host, None)
        }
    };
    let port = match port_text {
        None => default_port,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (0..=i64::from(u16::MAX)).contains(&n) => {
                u16::try_from(n).unwrap_or(default_port)
            }
            _ => {
                tracing::warn!(
                    port = text,
                    default = default_port,
                    "invalid port in {ENV_VAR}, using the default"
                );
                default_port
            }
        },
    };

    let path = path.trim_end_matches('/');
    OllamaHost {
        scheme: scheme.to_owned(),
        host,
        port,
        path: if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        },
    }
}

/// Go's `net.SplitHostPort`: `None` where Go returns an error (no port, too many colons,
/// stray brackets), which makes the caller fall back to the default port.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let port = rest[end + 1..].strip_prefix(':')?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':')?;
        if host.contains(':') || host.contains('[') || host.contains(']') {
            return None;
        }
        (host, port)
    };
    if port.contains('[') || port.contains(']') {
        return None;
    }
    Some((host, port))
}

/// Go's `net.IP.String()`: IPv4-mapped IPv6 addresses print as plain IPv4.
fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Go's `net.JoinHostPort`: brackets around anything containing a colon.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn connectable_host(host: &str) -> String {
    if host.is_empty() {
        return Ipv4Addr::LOCALHOST.to_string();
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        Ok(IpAddr::V6(v6)) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
        _ => host.to_owned(),
    }
}

fn validate(raw: &str, parsed: &OllamaHost) -> Result<()> {
    let invalid = |reason: String| Error::InvalidHost {
        value: raw.to_owned(),
        reason,
    };
    if !parsed.scheme.eq_ignore_ascii_case("http") && !parsed.scheme.eq_ignore_ascii_case("https") {
        return Err(invalid(format!(
            "scheme {:?} is not supported (use http or https)",
            parsed.scheme
        )));
    }
    let url = parsed.connectable_url();
    let checked = reqwest::Url::parse(&url).map_err(|e| invalid(format!("{url}: {e}")))?;
    if checked.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("{url} has no host")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example of fact sheet §9 plus the official `TestHost` cases:
    /// (input, url(), connectable_url()).
    const CASES: &[(&str, &str, &str)] = &[
        ("", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434", "http://1.2.3.4:11434"),
        (
            "example.com",
            "http://example.com:11434",
            "http://example.com:11434",
        ),
        ("host:8080", "http://host:8080", "http://host:8080"),
        ("1.2.3.4:1234", "http://1.2.3.4:1234", "http://1.2.3.4:1234"),
        (
            "example.com:1234",
            "http://example.com:1234",
            "http://example.com:1234",
        ),
        ("0.0.0.0", "http://0.0.0.0:11434", "http://127.0.0.1:11434"),
        (
            "0.0.0.0:8080",
            "http://0.0.0.0:8080",
            "http://127.0.0.1:8080",
        ),
        (
            "ollama.com",
            "https://ollama.com:443",
            "https://ollama.com:443",
        ),
        ("http://1.2.3.4", "http://1.2.3.4:80", "http://1.2.3.4:80"),
        (
            "http://1.2.3.4:4321",
            "http://1.2.3.4:4321",
            "http://1.2.3.4:4321",
        ),
        ("https://h", "https://h:443", "https://h:443"),
        (
            "https://1.2.3.4",
            "https://1.2.3.4:443",
            "https://1.2.3.4:443",
        ),
        (
            "https://1.2.3.4:4321",
            "https://1.2.3.4:4321",
            "https://1.2.3.4:4321",
        ),
        (
            "https://example.com/ollama",
            "https://example.com:443/ollama",
            "https://example.com:443/ollama",
        ),
        (
            "https://example.com/ollama/",
            "https://example.com:443/ollama",
            "https://example.com:443/ollama",
        ),
        (
            "example.com:8080/a/b",
            "http://example.com:8080/a/b",
            "http://example.com:8080/a/b",
        ),
        ("http://host/", "http://host:80", "http://host:80"),
        ("[::1]", "http://[::1]:11434", "http://[::1]:11434"),
        ("::1", "http://[::1]:11434", "http://[::1]:11434"),
        ("[::1]:1337", "http://[::1]:1337", "http://[::1]:1337"),
        ("[::]", "http://[::]:11434", "http://[::1]:11434"),
        ("[::]:8080", "http://[::]:8080", "http://[::1]:8080"),
        (":1234", "http://:1234", "http://127.0.0.1:1234"),
        (":0", "http://:0", "http://127.0.0.1:0"),
        (":66000", "http://:11434", "http://127.0.0.1:11434"),
        (":-1", "http://:11434", "http://127.0.0.1:11434"),
        ("host:abc", "http://host:11434", "http://host:11434"),
        ("https://h:99999", "https://h:443", "https://h:443"),
        (" 1.2.3.4 ", "http://1.2.3.4:11434", "http://1.2.3.4:11434"),
        (
            "\"1.2.3.4\"",
            "http://1.2.3.4:11434",
            "http://1.2.3.4:11434",
        ),
        ("'1.2.3.4'", "http://1.2.3.4:11434", "http://1.2.3.4:11434"),
        (
            " \" 1.2.3.4 \" ",
            "http://1.2.3.4:11434",
            "http://1.2.3.4:11434",
        ),
        ("  ", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        (
            "::ffff:1.2.3.4",
            "http://1.2.3.4:11434",
            "http://1.2.3.4:11434",
        ),
    ];

    #[test]
    fn every_documented_example() {
        for &(input, url, connectable) in CASES {
            let h = parse_host(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(h.url(), url, "url() of {input:?}");
            assert_eq!(
                h.connectable_url(),
                connectable,
                "connectable_url() of {input:?}"
            );
        }
    }

    #[test]
    fn parts_are_exposed() {
        let h = parse_host("https://example.com/ollama/").unwrap();
        assert_eq!(
            h,
            OllamaHost {
                scheme: "https".into(),
                host: "example.com".into(),
                port: 443,
                path: "/ollama".into(),
            }
        );
        let h = parse_host(":1234").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("", 1234));
        assert_eq!(parse_host("").unwrap(), OllamaHost::default());
    }

    #[test]
    fn connectable_urls_parse_as_urls() {
        for &(input, _, _) in CASES {
            let h = parse_host(input).unwrap();
            assert!(
                reqwest::Url::parse(&h.connectable_url()).is_ok(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn loopback_detection() {
        for (input, expect) in [
            ("", true),
            ("0.0.0.0", true),
            ("[::]", true),
            (":99", true),
            ("localhost:1", true),
            ("::1", true),
            ("example.com", false),
            ("192.168.1.2", false),
        ] {
            assert_eq!(
                parse_host(input).unwrap().is_loopback(),
                expect,
                "{input:?}"
            );
        }
    }

    #[test]
    fn unusable_values_are_errors_quoting_the_value() {
        for input in ["tcp://host:1", "exa mple.com", "http://ex ample:1"] {
            match parse_host(input) {
                Err(Error::InvalidHost { value, .. }) => assert_eq!(value, input),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }
}
