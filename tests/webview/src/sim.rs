//! An `ollama-sim` process started for one test, and its `/__sim/` control API.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result, io};
use crate::http;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A running simulator; killed on drop.
#[derive(Debug)]
pub struct Sim {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts `bin` on a free port with the scenario `toml`, and waits for it to listen.
    pub fn start(bin: &Path, toml: &str) -> Result<Sim> {
        Self::start_at(bin, toml, "127.0.0.1:0")
    }

    /// Starts `bin` listening at `listen` (`127.0.0.1:PORT`) with the scenario `toml`.
    pub fn start_at(bin: &Path, toml: &str, listen: &str) -> Result<Sim> {
        let dir = tempfile::tempdir().map_err(io("tempdir"))?;
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, toml).map_err(io("write scenario"))?;
        let mut child = Command::new(bin)
            .args(["--listen", listen, "--scenario"])
            .arg(&scenario)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io(format!("start {}", bin.display())))?;
        // The first stdout line is the base URL, printed once it listens.
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Setup("ollama-sim has no stdout".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let url = match rx.recv_timeout(TIMEOUT) {
            Ok(line) if line.trim().starts_with("http://") => line.trim().to_owned(),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Setup(format!(
                    "ollama-sim did not print its URL: {other:?}"
                )));
            }
        };
        Ok(Sim {
            child,
            url,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let r = http::request(method, &url, body, TIMEOUT)?;
        if r.status >= 400 {
            return Err(Error::Http {
                url,
                detail: format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)),
            });
        }
        r.json(&url)
    }

    /// Every later generation answers `text`.
    pub fn set_reply(&self, text: &str) -> Result<()> {
        self.send("POST", "/__sim/reply", Some(&json!({ "text": text })))
            .map(drop)
    }

    /// Stages a fault (`{"kind": ...}`).
    pub fn fault(&self, fault: Value) -> Result<()> {
        self.send("POST", "/__sim/fault", Some(&fault)).map(drop)
    }

    /// Removes every fault.
    pub fn clear(&self) -> Result<()> {
        self.send("POST", "/__sim/clear", None).map(drop)
    }

    /// `GET /__sim/stats`.
    pub fn stats(&self) -> Result<Value> {
        self.send("GET", "/__sim/stats", None)
    }

    /// Every API request the simulator recorded, oldest first: `{method, path, body}`.
    pub fn requests(&self) -> Result<Vec<Value>> {
        Ok(self
            .send("GET", "/__sim/requests", None)?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Names of the models loaded now.
    pub fn loaded(&self) -> Result<Vec<String>> {
        Ok(self.stats()?["loaded"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Unloads `model` the way any Ollama client does (`keep_alive: 0`, no prompt).
    pub fn unload(&self, model: &str) -> Result<()> {
        self.send(
            "POST",
            "/api/generate",
            Some(&json!({ "model": model, "keep_alive": 0 })),
        )
        .map(drop)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's `default.toml` scenario with some top-level keys replaced
/// (`[("tokens_per_second", "200.0")]`).
pub fn scenario(default_toml: &str, overrides: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut top_level = true;
    for line in default_toml.lines() {
        if line.trim_start().starts_with('[') {
            top_level = false;
        }
        let key = line.split('=').next().map(str::trim).unwrap_or_default();
        if top_level && overrides.iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    // Top-level keys must come before the first table: prepend them.
    let mut head: String = overrides
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    head.push_str(&out);
    head
}

#[cfg(test)]
mod tests {
    #[test]
    fn scenario_overrides_replace_top_level_keys_only() {
        let base = "load_ms = 1200\ntokens_per_second = 60.0\n[[gpus]]\nname = \"x\"\n";
        let s = super::scenario(base, &[("tokens_per_second", "200.0"), ("name", "\"y\"")]);
        assert!(
            s.starts_with("tokens_per_second = 200.0\nname = \"y\"\n"),
            "{s}"
        );
        assert!(!s.contains("60.0"), "{s}");
        assert!(
            s.contains("[[gpus]]\nname = \"x\""),
            "table keys untouched: {s}"
        );
    }
}
