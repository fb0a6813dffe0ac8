//! `yollayah watch --notify` against a real notification daemon: dunst on a private D-Bus
//! session and a private Xvfb display, all started here and stopped after. One staged
//! incident must give exactly one notification, and its resolution must replace it on screen
//! (`dunstctl history` then holds one notification: the resolution). Without a daemon the
//! watch warns once and goes on.
//!
//! Needs `Xvfb`, `dbus-daemon`, `dunst` and `dunstctl` (`scripts/deps.sh test`); without them
//! the tests print why and skip, except under `scripts/test.sh`
//! (`YOLLAYAH_REQUIRE_DESKTOP=1`), where a missing tool fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use ollama_sim::Fault;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

const MODEL: &str = "llama3.2:3b";

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["Xvfb", "dbus-daemon", "dunst", "dunstctl"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let why = format!("{} not installed", missing.join(", "));
    assert!(
        std::env::var_os("YOLLAYAH_REQUIRE_DESKTOP").is_none(),
        "{why} (scripts/deps.sh test installs them)"
    );
    Some(format!("SKIPPED: {why}"))
}

/// A private session bus, and optionally Xvfb + dunst on it; everything is killed on drop.
struct Desktop {
    children: Vec<Child>,
    bus: String,
    dir: tempfile::TempDir,
}

impl Desktop {
    fn start(with_dunst: bool) -> Desktop {
        let dir = tempfile::tempdir().unwrap();
        let mut children = Vec::new();
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!(
                "--address=unix:path={}",
                dir.path().join("bus").display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        children.push(bus);
        let mut desktop = Desktop {
            children,
            bus: address.trim().to_owned(),
            dir,
        };
        if with_dunst {
            desktop.start_dunst();
        }
        desktop
    }

    fn start_dunst(&mut self) {
        // Xvfb picks a free display and writes its number once it accepts clients.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut display = String::new();
        BufReader::new(xvfb.stdout.take().unwrap())
            .read_line(&mut display)
            .unwrap();
        self.children.push(xvfb);
        let dunst = Command::new("dunst")
            .env("DISPLAY", format!(":{}", display.trim()))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            // No user dunstrc: the defaults.
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(dunst);
        for _ in 0..100 {
            if self.dunstctl_ok(&["count", "displayed"]).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dunst did not come up on the private bus");
    }

    fn dunstctl_ok(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn dunstctl(&self, args: &[&str]) -> String {
        self.dunstctl_ok(args)
            .unwrap_or_else(|| panic!("dunstctl {args:?} failed"))
    }

    fn displayed(&self) -> u32 {
        self.dunstctl(&["count", "displayed"])
            .trim()
            .parse()
            .unwrap()
    }

    /// (summary, body) of Yollayah's notifications in dunst's history, oldest first, after
    /// moving the displayed ones there.
    fn ours(&self) -> Vec<(String, String)> {
        self.dunstctl(&["close-all"]);
        let history: Value = serde_json::from_str(&self.dunstctl(&["history"])).unwrap();
        let field = |n: &Value, k: &str| n[k]["data"].as_str().unwrap_or_default().to_owned();
        let mut out: Vec<(i64, String, String)> = history["data"][0]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| field(n, "appname") == "Yollayah")
            .map(|n| {
                (
                    n["id"]["data"].as_i64().unwrap(),
                    field(n, "summary"),
                    field(n, "body"),
                )
            })
            .collect();
        out.sort_by_key(|n| n.0);
        out.into_iter().map(|(_, s, b)| (s, b)).collect()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // dunst first, the bus last.
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `watch --json --notify` on `bus` through one incident (staged CPU fallback, then
/// cleared); `during` runs while the incident is open. Returns the events and stderr.
async fn one_incident(bus: &str, during: impl FnOnce()) -> (Vec<Value>, String) {
    let sim = sim(demo()).await;
    let home = Home::new();
    home.write_config("[watchdog]\ntick_ms = 250\n[alerts]\ncooldown_s = 0\n");
    let url = sim.url();
    let mut child = home
        .command(&[
            "--url",
            &url,
            "watch",
            "--json",
            "--notify",
            "--gpu-source",
            "sim",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let mut faulted = false;
    let mut during = Some(during);
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("watch went quiet")
            .unwrap()
            .expect("watch ended early");
        let event: Value = serde_json::from_str(&line).unwrap();
        let gpu = event["type"] == "snapshot" && event["verdict"]["kind"] == "gpu";
        let kind = event["type"].as_str().unwrap().to_owned();
        seen.push(event);
        if gpu && !faulted {
            sim.fault(Fault::PsLiesGpu {
                model: MODEL.into(),
            });
            faulted = true;
        } else if kind == "alert_raised" {
            if let Some(f) = during.take() {
                tokio::task::block_in_place(f);
            }
            sim.clear_faults();
        } else if kind == "alert_resolved" {
            break;
        }
    }
    // The resolution reaches the daemon off the watch loop: give it a moment.
    tokio::time::sleep(Duration::from_millis(700)).await;
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    (seen, err_task.await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_notification_per_incident_and_the_resolution_replaces_it() {
    if let Some(why) = missing_tools() {
        eprintln!("{why}");
        return;
    }
    bounded(async {
        let desktop = Desktop::start(true);
        let (seen, stderr) = one_incident(&desktop.bus, || {
            for _ in 0..100 {
                if desktop.displayed() > 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Several more ticks (250 ms each) of the same incident: still one notification.
            std::thread::sleep(Duration::from_millis(1500));
            assert_eq!(desktop.displayed(), 1, "one alert per incident");
        })
        .await;
        let raised = seen.iter().filter(|e| e["type"] == "alert_raised").count();
        assert_eq!(raised, 1, "{seen:?}");
        assert!(
            !stderr.contains("notification"),
            "unexpected warning: {stderr}"
        );
        let ours = desktop.ours();
        eprintln!("dunst history: {ours:?}");
        assert_eq!(
            ours.len(),
            1,
            "the resolution must replace the alert: {ours:?}"
        );
        let (summary, body) = &ours[0];
        assert!(
            summary.contains(MODEL) && summary.contains("back on the GPU"),
            "{summary} / {body}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_daemon_watch_warns_once_and_goes_on() {
    if let Some(why) = missing_tools() {
        eprintln!("{why}");
        return;
    }
    bounded(async {
        // A session bus on which nobody owns org.freedesktop.Notifications.
        let desktop = Desktop::start(false);
        let (seen, stderr) = one_incident(&desktop.bus, || {}).await;
        assert!(seen.iter().any(|e| e["type"] == "alert_resolved"));
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("desktop notifications are not available"))
            .collect();
        assert_eq!(warnings.len(), 1, "exactly one warning: {stderr}");
    })
    .await;
}
