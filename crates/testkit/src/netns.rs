//! A throw-away network namespace with a veth pair and private addresses.
//!
//! ```text
//!   this namespace                      namespace NAME
//!   veth yl<id>h  10.231.X.1/30  <--->  veth yl<id>n  10.231.X.2/30 (+ lo up)
//! ```
//!
//! The host end is an address of this machine; the namespace end is not: a server listening
//! there is, for every purpose of the scope rule, on another machine. Everything is removed on
//! drop (deleting the namespace deletes its veth end, which deletes the pair).
//!
//! Needs root and iproute2's `ip`. [`NetNs::create`] says why it cannot run instead of failing,
//! so tests skip with that message on machines without them.
//!
//! Processes run inside with [`NetNs::command`] (`ip netns exec NAME …`). A test that needs an
//! in-process server inside (e.g. the Ollama simulator) re-runs its own test binary there:
//! [`NetNs::self_command`] runs one named test of the current executable, which checks an
//! environment variable and serves instead of testing.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One namespace; removed when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    host_if: String,
    host_addr: Ipv4Addr,
    ns_addr: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl NetNs {
    /// Creates a namespace with a veth pair. `Err` is the reason it cannot (not root, no
    /// `ip`, no netns support); print it and skip.
    pub fn create() -> Result<NetNs, String> {
        if !cfg!(target_os = "linux") {
            return Err("network namespaces need Linux".into());
        }
        if !is_root() {
            return Err("network namespace tests need root".into());
        }
        if Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err("iproute2's `ip` is missing".into());
        }
        // Unique per process and per call, so parallel tests and test binaries never collide;
        // interface names stay within 15 bytes.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 10_000) * 10 + n % 10;
        let subnet = (std::process::id().wrapping_mul(7).wrapping_add(n)) % 250;
        let ns = NetNs {
            name: format!("yollayah-test-{id}"),
            host_if: format!("yl{id}h"),
            host_addr: Ipv4Addr::new(10, 231, subnet as u8, 1),
            ns_addr: Ipv4Addr::new(10, 231, subnet as u8, 2),
        };
        ns.setup().inspect_err(|_| ns.teardown())?;
        Ok(ns)
    }

    fn setup(&self) -> Result<(), String> {
        let peer = format!("yl{}n", &self.host_if[2..self.host_if.len() - 1]);
        let host_cidr = format!("{}/30", self.host_addr);
        let ns_cidr = format!("{}/30", self.ns_addr);
        ip(&["netns", "add", &self.name])?;
        ip(&[
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &self.name])?;
        ip(&["addr", "add", &host_cidr, "dev", &self.host_if])?;
        ip(&["link", "set", &self.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &self.name, "ip"];
            a.extend_from_slice(args);
            ip(&a)
        };
        inside(&["addr", "add", &ns_cidr, "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(())
    }

    fn teardown(&self) {
        // Deleting the namespace destroys its veth end and with it the pair; the explicit
        // link delete covers a setup that failed before the move.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address inside the namespace (not an address of this machine).
    pub fn inside_addr(&self) -> Ipv4Addr {
        self.ns_addr
    }

    /// The host end of the veth pair (an address of this machine, like a docker bridge).
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// `program args…` to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// The current test executable, inside the namespace, running only the test `test_name`
    /// (exactly) with its output shown: the caller sets the environment that makes that test
    /// serve.
    pub fn self_command(&self, test_name: &str) -> Result<Command, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current test binary: {e}"))?;
        let exe = exe
            .to_str()
            .ok_or_else(|| "test binary path is not UTF-8".to_owned())?
            .to_owned();
        let mut c = self.command(&exe);
        c.args([
            test_name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        Ok(c)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.teardown();
    }
}
