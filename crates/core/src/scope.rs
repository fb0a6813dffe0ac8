//! Observation scope: where the GPU facts of an observation come from.
//!
//! NVML and the process table only tell the truth about the machine they are read on. When
//! Ollama runs elsewhere, this machine's idle GPU says nothing about its model, so a remote
//! server is never cross-checked locally: its verdict rests on `/api/ps` alone and is marked
//! unverified. "Local" is decided by resolving Ollama's host and comparing every resolved
//! address with this machine's interface addresses — never by matching the string
//! "localhost" — so a name that resolves here, `0.0.0.0`, `[::]` and the docker bridge
//! address (one of this machine's addresses like any other) are all local.
//!
//! Resolution does DNS, so it runs once at start-up (and when the URL changes), never per tick.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long [`resolve`] waits for DNS before calling the host remote.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The one line that tells a user how to get the truth about a remote server.
pub const REMOTE_HINT: &str = "Run `yollayah agent` next to the Ollama server, or run \
    `yollayah doctor` on that machine, to see where the model really runs.";

/// Where the GPU facts of a snapshot, report or bundle come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Scope {
    /// Ollama runs on this machine: NVML and the process table apply. The default, so bundles
    /// written before the scope existed (all captured next to their server) keep their meaning.
    #[default]
    Local,
    /// A Yollayah agent next to the server at `url` supplies the GPU facts.
    Agent { url: String },
    /// Ollama runs elsewhere and no agent reports for it: no GPU facts at all.
    Remote,
}

impl Scope {
    /// Whether GPU and process facts apply to the server's models.
    pub fn has_gpu_facts(&self) -> bool {
        !matches!(self, Scope::Remote)
    }

    /// `local`, `agent` or `remote`, as in the JSON.
    pub fn label(&self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Agent { .. } => "agent",
            Scope::Remote => "remote",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The scope of a server whose host resolved to `resolved`, given this machine's interface
/// addresses. Pure: the rule without DNS or interface listing.
///
/// Local when any resolved address is loopback, unspecified (`0.0.0.0`, `::`, which a client
/// dials as this machine) or one of `local`. A name that resolves to nothing is remote: we
/// cannot show that its GPU is ours.
pub fn classify(resolved: &[IpAddr], local: &[IpAddr]) -> Scope {
    let here = |ip: &IpAddr| {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip.is_unspecified() || local.iter().any(|l| l.to_canonical() == ip)
    };
    if resolved.iter().any(here) {
        Scope::Local
    } else {
        Scope::Remote
    }
}

/// This machine's interface addresses (every interface, up or down, docker bridges included),
/// from `getifaddrs` via sysinfo, which the crate already uses for the process table. Empty
/// when they cannot be read; loopback is always judged local anyway.
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(networks) = sysinfo::Networks::new_with_refreshed_list() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = networks
        .values()
        .flat_map(|n| n.ip_networks().iter().map(|net| net.addr))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The host and port of an Ollama base URL (`http://host:port/prefix`), brackets stripped.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    Some((host, u.port_or_known_default().unwrap_or(0)))
}

/// Resolves the scope of the server at `url`: DNS (bounded by [`RESOLVE_TIMEOUT`]), then
/// [`classify`] against [`local_addresses`]. An unparsable URL or a name that does not
/// resolve in time is remote.
pub async fn resolve(url: &str) -> Scope {
    let Some((host, port)) = host_port(url) else {
        return Scope::Remote;
    };
    let resolved: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            match tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                Ok(Err(e)) => {
                    tracing::debug!("resolving {host}: {e}");
                    Vec::new()
                }
                Err(_) => {
                    tracing::debug!("resolving {host}: timed out");
                    Vec::new()
                }
            }
        }
    };
    // Loopback and unspecified need no interface list; skip reading it.
    let cheap = classify(&resolved, &[]);
    if cheap == Scope::Local {
        return cheap;
    }
    let local = tokio::task::spawn_blocking(local_addresses)
        .await
        .unwrap_or_default();
    classify(&resolved, &local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_unspecified_and_own_addresses_are_local() {
        let here = [ip("192.168.1.20"), ip("172.17.0.1"), ip("fe80::1")];
        for a in [
            "127.0.0.1",
            "127.3.4.5",
            "::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(classify(&[ip(a)], &[]), Scope::Local, "{a}");
        }
        // The docker bridge is simply one of this machine's addresses.
        assert_eq!(classify(&[ip("172.17.0.1")], &here), Scope::Local);
        assert_eq!(classify(&[ip("::ffff:192.168.1.20")], &here), Scope::Local);
        // A name resolving to several addresses is local if any of them is ours.
        assert_eq!(
            classify(&[ip("10.9.9.9"), ip("192.168.1.20")], &here),
            Scope::Local
        );
    }

    #[test]
    fn anything_else_is_remote() {
        let here = [ip("192.168.1.20")];
        assert_eq!(classify(&[ip("192.168.1.21")], &here), Scope::Remote);
        assert_eq!(classify(&[ip("172.17.0.2")], &here), Scope::Remote);
        assert_eq!(classify(&[], &here), Scope::Remote);
    }

    #[test]
    fn url_host_and_port() {
        assert_eq!(host_port("http://[::1]:11434"), Some(("::1".into(), 11434)));
        assert_eq!(
            host_port("https://ollama.example.com/prefix"),
            Some(("ollama.example.com".into(), 443))
        );
        assert_eq!(host_port("not a url"), None);
    }

    #[test]
    fn serde_shape_and_default() {
        assert_eq!(
            serde_json::to_string(&Scope::Remote).unwrap(),
            r#"{"kind":"remote"}"#
        );
        assert_eq!(
            serde_json::to_string(&Scope::Agent {
                url: "http://gpu1:8080".into()
            })
            .unwrap(),
            r#"{"kind":"agent","url":"http://gpu1:8080"}"#
        );
        assert_eq!(Scope::default(), Scope::Local);
        assert!(!Scope::Remote.has_gpu_facts());
        assert!(Scope::Local.has_gpu_facts());
    }

    #[tokio::test]
    async fn resolves_literals_and_this_machines_names() {
        assert_eq!(resolve("http://127.0.0.1:11434").await, Scope::Local);
        assert_eq!(resolve("http://[::1]:11434").await, Scope::Local);
        assert_eq!(resolve("http://localhost:11434").await, Scope::Local);
        // TEST-NET-2 is documentation-only; no machine here has it.
        if !local_addresses().contains(&ip("198.51.100.7")) {
            assert_eq!(resolve("http://198.51.100.7:11434").await, Scope::Remote);
        }
        // Every interface address of this machine is local, whatever its kind.
        for a in local_addresses() {
            let url = match a {
                IpAddr::V4(v4) => format!("http://{v4}:11434"),
                IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => continue,
                IpAddr::V6(v6) => format!("http://[{v6}]:11434"),
            };
            assert_eq!(resolve(&url).await, Scope::Local, "{url}");
        }
    }
}
