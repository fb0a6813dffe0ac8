//! Finding Ollama's model-runner processes and tying them to models.
//!
//! `/api/ps` has no pid and NVML has nothing but pids, so the runner's argv is the only link
//! (fact sheet §6): since Ollama 0.30 each model runs in `llama-server --model <blob>`, before
//! that in `ollama runner --model <blob>`; the blob path equals the `FROM` line of the model's
//! `/api/show` modelfile. Short-lived discovery processes (no `--model`) are ignored; MLX
//! runners (`--model <name>`) are recorded but match no blob.

use std::ffi::OsStr;

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// One model runner, in the shape of the shared JSON contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub pid: u32,
    /// Process name (`llama-server`, `ollama`, …).
    pub exe: String,
    /// The `--model` argument: a blob path (`…/blobs/sha256-<hex>`), or a model name for MLX.
    pub model_path: String,
    pub cmdline: Vec<String>,
    /// Percent of one core (100 = one core busy) since the previous scan.
    #[serde(default)]
    pub cpu_percent: f32,
    #[serde(default)]
    pub rss_bytes: u64,
    /// The container runtime the runner lives in (`docker`, `containerd`, `kubernetes`,
    /// `podman`, `lxc`), from `/proc/<pid>/cgroup`; `None` on the host or where unknown. A GPU
    /// lost inside a container has other causes and fixes than one lost on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Load-time settings read back from a runner's argv: what the runner really got, which beats
/// any guess from env vars or Modelfiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerArgs<'a> {
    /// `-c` / `--ctx-size`: total context over all slots.
    pub ctx_total: Option<u64>,
    /// `-np` / `--parallel`.
    pub parallel: Option<u64>,
    /// `-ngl` / `--n-gpu-layers`.
    pub gpu_layers: Option<i64>,
    /// `--cache-type-k`.
    pub cache_type_k: Option<&'a str>,
    /// `--flash-attn on|off|auto` (or a bare `--flash-attn` on old runners = on).
    pub flash_attn: Option<&'a str>,
}

impl Runner {
    /// Load-time settings from the argv; absent flags are `None`.
    pub fn args(&self) -> RunnerArgs<'_> {
        let mut out = RunnerArgs::default();
        let mut it = self.cmdline.iter().map(String::as_str).peekable();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                _ => (a, None),
            };
            let mut value = || inline.or_else(|| it.next());
            match flag {
                "-c" | "--ctx-size" => out.ctx_total = value().and_then(|v| v.parse().ok()),
                "-np" | "--parallel" => out.parallel = value().and_then(|v| v.parse().ok()),
                "-ngl" | "--n-gpu-layers" | "--gpu-layers" => {
                    out.gpu_layers = value().and_then(|v| v.parse().ok())
                }
                "--cache-type-k" | "-ctk" => out.cache_type_k = value(),
                "--flash-attn" | "-fa" => {
                    out.flash_attn = match inline {
                        Some(v) => Some(v),
                        None => match it.peek() {
                            Some(v) if !v.starts_with('-') => it.next(),
                            _ => Some("on"),
                        },
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// A `llama-server` runner (Ollama ≥ 0.30), which gets `-ngl` only when a client set
    /// num_gpu; earlier runners always got Ollama's own computed layer count.
    pub fn is_llama_server(&self) -> bool {
        let argv0 = self.cmdline.first().map(String::as_str).unwrap_or("");
        self.exe.starts_with("llama-server") || file_name(argv0).starts_with("llama-server")
    }

    /// True when `model_path` names a blob file rather than a model (MLX runners).
    pub fn has_blob_path(&self) -> bool {
        file_name(&self.model_path).starts_with("sha256-")
    }
}

/// The container runtime named by a `/proc/<pid>/cgroup` text, if any: cgroup v1 lines
/// (`12:devices:/docker/<id>`) and v2 (`0::/system.slice/docker-<id>.scope`) alike.
pub fn container_from_cgroup(text: &str) -> Option<&'static str> {
    text.lines().find_map(|l| {
        let path = l.splitn(3, ':').nth(2)?;
        if path.contains("kubepods") {
            Some("kubernetes")
        } else if path.contains("/docker") || path.contains("docker-") {
            Some("docker")
        } else if path.contains("libpod") {
            Some("podman")
        } else if path.contains("containerd") || path.contains("cri-containerd") {
            Some("containerd")
        } else if path.contains("/lxc") || path.contains("lxc.payload") {
            Some("lxc")
        } else {
            None
        }
    })
}

/// The container runtime of `pid` (Linux; `None` elsewhere or when unreadable).
fn container_of(pid: u32) -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_from_cgroup(&text).map(str::to_owned)
}

fn file_name(p: &str) -> &str {
    p.rsplit(['/', '\\']).next().unwrap_or(p)
}

/// Decides from a process name and argv whether it is an Ollama model runner, and returns its
/// `--model` argument. Pure, so the rules are testable without processes.
pub fn parse_runner_cmdline<'a>(name: &str, cmdline: &'a [String]) -> Option<&'a str> {
    let argv0 = cmdline.first().map(|s| file_name(s)).unwrap_or("");
    let is = |n: &str| {
        name == n || argv0 == n || name == format!("{n}.exe") || argv0 == format!("{n}.exe")
    };
    let llama = is("llama-server") || is("ollama_llama_server");
    // `ollama runner …`: the same binary as `ollama serve`, told apart by its subcommand.
    let ollama_runner = is("ollama") && cmdline.get(1).is_some_and(|a| a == "runner");
    if !(llama || ollama_runner) {
        return None;
    }
    let mut it = cmdline.iter();
    while let Some(a) = it.next() {
        if a == "--model" || a == "-m" {
            return it.next().map(String::as_str).filter(|m| !m.is_empty());
        }
        if let Some(m) = a.strip_prefix("--model=") {
            return Some(m).filter(|m| !m.is_empty());
        }
    }
    None
}

/// The blob path of the model's `FROM` line in an `/api/show` modelfile, skipping comments.
pub fn blob_path_from_modelfile(modelfile: &str) -> Option<&str> {
    modelfile.lines().find_map(|line| {
        let line = line.trim_start();
        if line.starts_with('#') {
            return None;
        }
        let (kw, rest) = line.split_once(char::is_whitespace)?;
        kw.eq_ignore_ascii_case("FROM")
            .then(|| rest.trim())
            .filter(|p| !p.is_empty())
    })
}

/// Scans the process table for runners. Holds ONE long-lived [`System`], because CPU usage is
/// the difference between two refreshes: a fresh `System` reports 0 % for everyone.
pub struct RunnerScanner {
    sys: Option<System>,
    candidates: Vec<Pid>,
    /// The runners of the last answer, to notice one vanishing or changing its model.
    known: Vec<Runner>,
    full_scans: u64,
}

/// Whether a runner of `known` is gone from `now` or runs another `--model` there. A runner
/// that exits and is replaced (same blob, new pid) is only found by a full scan, so this is
/// when one must run, in the same tick.
pub fn runner_identity_changed(known: &[Runner], now: &[Runner]) -> bool {
    known.iter().any(|k| {
        !now.iter()
            .any(|n| n.pid == k.pid && n.model_path == k.model_path)
    })
}

impl Default for RunnerScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl RunnerScanner {
    /// A scanner; the first [`scan`](Self::scan) reports 0 % CPU for new runners.
    pub fn new() -> Self {
        RunnerScanner {
            sys: System::new().ok(),
            candidates: Vec::new(),
            known: Vec::new(),
            full_scans: 0,
        }
    }

    /// Current runners, sorted by pid, from a full scan of the process table. Empty when the
    /// process table cannot be read.
    pub fn scan(&mut self) -> Vec<Runner> {
        let Some(sys) = self.sys.as_mut() else {
            return Vec::new();
        };
        self.full_scans += 1;
        // Pass 1 reads only names for every process; pass 2 (in `collect`) reads argv, CPU and
        // memory for the few whose name can be a runner.
        // Without tasks: on Linux sysinfo otherwise lists every thread as a process of its own,
        // with the process's name and argv, and one llama-server became 35 "runners".
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        self.candidates.clear();
        self.candidates.extend(
            sys.processes()
                .iter()
                .filter(|(_, p)| p.thread_kind().is_none() && maybe_runner_name(p.name()))
                .map(|(pid, _)| *pid),
        );
        let runners = self.collect();
        self.known.clone_from(&runners);
        runners
    }

    /// The runners found by the last [`scan`](Self::scan), with fresh CPU and memory figures.
    /// It touches only those few processes, so the watchdog can call it on every tick and
    /// leave full scans for when the set of loaded models changes (a full scan reads every
    /// process of the machine). When a known runner exited or changed its `--model` (a
    /// replaced runner has a new pid), a full scan runs right away instead.
    pub fn refresh_known(&mut self) -> Vec<Runner> {
        let runners = self.collect();
        if let Some(sys) = self.sys.as_ref() {
            // `collect` refreshed these pids with dead-process removal, so a runner that
            // exited is gone from `sys` and is forgotten here too.
            self.candidates.retain(|pid| sys.process(*pid).is_some());
        }
        if runner_identity_changed(&self.known, &runners) {
            return self.scan();
        }
        self.known.clone_from(&runners);
        runners
    }

    /// How many full scans of the process table ran so far (bench and test figure).
    pub fn full_scans(&self) -> u64 {
        self.full_scans
    }

    /// Whether the last scan found a process that could be a runner at all.
    pub fn knows_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    fn collect(&mut self) -> Vec<Runner> {
        let Some(sys) = self.sys.as_mut() else {
            return Vec::new();
        };
        if self.candidates.is_empty() {
            return Vec::new();
        }
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&self.candidates),
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cpu()
                .with_memory()
                .with_cmd(UpdateKind::OnlyIfNotSet),
        );
        let mut out = Vec::new();
        for pid in &self.candidates {
            let Some(p) = sys.process(*pid) else { continue };
            // A thread's CPU time is already in its process's figure (/proc/PID/stat).
            if p.thread_kind().is_some() {
                continue;
            }
            // A runner that was killed stays in the table until Ollama reaps it, with its GPU
            // memory already freed: counted as the model's runner, it read as a lost GPU backend
            // for a tick (seen on the H200, docs/measurements/gpu-proof.md, s5).
            if matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead) {
                continue;
            }
            let name = p.name().to_string_lossy();
            let cmdline: Vec<String> = p
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let Some(model) = parse_runner_cmdline(&name, &cmdline) else {
                continue;
            };
            // A process never changes container: read its cgroup once, not on every tick.
            let container = match self.known.iter().find(|k| k.pid == pid.as_u32()) {
                Some(k) => k.container.clone(),
                None => container_of(pid.as_u32()),
            };
            out.push(Runner {
                pid: pid.as_u32(),
                exe: name.into_owned(),
                model_path: model.to_owned(),
                cpu_percent: p.cpu_usage(),
                rss_bytes: p.memory(),
                cmdline,
                container,
            });
        }
        out.sort_by_key(|r| r.pid);
        out
    }
}

fn maybe_runner_name(name: &OsStr) -> bool {
    let n = name.to_string_lossy();
    let n = n.strip_suffix(".exe").unwrap_or(&n);
    // Linux truncates comm to 15 bytes: "ollama_llama_server" reads "ollama_llama_se".
    matches!(n, "llama-server" | "ollama") || n.starts_with("ollama_llama_se")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    const BLOB: &str = "/usr/share/ollama/.ollama/models/blobs/sha256-6e4c38e1172f42fdbff13edf9a7a017679fb82b0fde415a3e8b3c31c6ed4a4e4";

    #[test]
    fn recognises_each_runner_generation() {
        let head = v(&[
            "/usr/local/lib/ollama/llama-server",
            "--model",
            BLOB,
            "--port",
            "41234",
            "-c",
            "16384",
            "-np",
            "2",
            "-ngl",
            "0",
            "--cache-type-k",
            "q8_0",
            "--cache-type-v",
            "q8_0",
            "--flash-attn",
            "on",
        ]);
        assert_eq!(parse_runner_cmdline("llama-server", &head), Some(BLOB));
        let old = v(&[
            "/usr/bin/ollama",
            "runner",
            "--ollama-engine",
            "--model",
            BLOB,
            "--port",
            "1",
        ]);
        assert_eq!(parse_runner_cmdline("ollama", &old), Some(BLOB));
        let win = v(&["C:\\x\\llama-server.exe", "--model=C:\\m\\blobs\\sha256-ab"]);
        assert_eq!(
            parse_runner_cmdline("llama-server.exe", &win),
            Some("C:\\m\\blobs\\sha256-ab")
        );
        let r = Runner {
            pid: 1,
            exe: "llama-server".into(),
            model_path: BLOB.into(),
            cmdline: head,
            cpu_percent: 0.0,
            rss_bytes: 0,
            container: None,
        };
        let a = r.args();
        assert_eq!(
            (a.ctx_total, a.parallel, a.gpu_layers),
            (Some(16384), Some(2), Some(0))
        );
        assert_eq!((a.cache_type_k, a.flash_attn), (Some("q8_0"), Some("on")));
        assert!(r.has_blob_path());
    }

    #[test]
    fn ignores_discovery_serve_and_strangers() {
        let discovery = v(&[
            "/usr/local/lib/ollama/llama-server",
            "--port",
            "5555",
            "--host",
            "127.0.0.1",
            "--no-webui",
            "--offline",
            "--verbose",
        ]);
        assert_eq!(parse_runner_cmdline("llama-server", &discovery), None);
        assert_eq!(
            parse_runner_cmdline("ollama", &v(&["ollama", "serve"])),
            None
        );
        assert_eq!(
            parse_runner_cmdline("ollama", &v(&["ollama", "run", "--model", "x"])),
            None
        );
        assert_eq!(
            parse_runner_cmdline("python3", &v(&["python3", "--model", BLOB])),
            None
        );
        assert_eq!(
            parse_runner_cmdline("llama-server", &v(&["llama-server", "--model"])),
            None
        );
    }

    #[test]
    fn mlx_runner_is_recorded_with_its_name() {
        let mlx = v(&[
            "/usr/bin/ollama",
            "runner",
            "--mlx-engine",
            "--model",
            "qwen3:8b-mlx",
            "--port",
            "9",
        ]);
        let m = parse_runner_cmdline("ollama", &mlx);
        assert_eq!(m, Some("qwen3:8b-mlx"));
        let r = Runner {
            pid: 1,
            exe: "ollama".into(),
            model_path: "qwen3:8b-mlx".into(),
            cmdline: mlx,
            cpu_percent: 0.0,
            rss_bytes: 0,
            container: None,
        };
        assert!(!r.has_blob_path());
    }

    #[test]
    fn container_runtime_from_cgroup() {
        // cgroup v2 under systemd's docker driver, v1 under cgroupfs, Kubernetes, podman.
        assert_eq!(
            container_from_cgroup("0::/system.slice/docker-4f1c0d2a9b.scope\n"),
            Some("docker")
        );
        assert_eq!(
            container_from_cgroup("12:devices:/docker/4f1c0d2a9b\n11:memory:/docker/4f1c0d2a9b\n"),
            Some("docker")
        );
        assert_eq!(
            container_from_cgroup(
                "0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-ab.scope\n"
            ),
            Some("kubernetes")
        );
        assert_eq!(
            container_from_cgroup("0::/machine.slice/libpod-9a.scope/container\n"),
            Some("podman")
        );
        // The host: a systemd service, a user session.
        assert_eq!(
            container_from_cgroup("0::/system.slice/ollama.service\n"),
            None
        );
        assert_eq!(
            container_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
        assert_eq!(container_from_cgroup(""), None);
    }

    #[test]
    fn from_line_skips_comments() {
        let mf = format!(
            "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM deepseek-r1:32b\n\nFROM {BLOB}\nTEMPLATE \"\"\"{{{{ .Prompt }}}}\"\"\"\nPARAMETER num_ctx 131072\n"
        );
        assert_eq!(blob_path_from_modelfile(&mf), Some(BLOB));
        assert_eq!(blob_path_from_modelfile("# FROM x\n"), None);
        assert_eq!(blob_path_from_modelfile("from /a/b\n"), Some("/a/b"));
    }
}
