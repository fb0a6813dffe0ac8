//! Runner discovery against real processes: a process named `llama-server` with `--model`
//! (a symlink to /bin/sh, so argv looks exactly like Ollama's runner) must be found with its
//! blob path; an identical one without `--model` (Ollama's discovery process) must not.
#![cfg(target_os = "linux")]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use yollayah_core::gpu::RunnerScanner;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn finds_runner_with_model_and_ignores_discovery_process() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("llama-server");
    std::os::unix::fs::symlink("/bin/sh", &exe).unwrap();
    let blob = format!("/tmp/x/blobs/sha256-{}", "ab".repeat(32));
    // `; true` keeps sh alive as the parent instead of exec'ing sleep.
    let with_model = Kill(
        Command::new(&exe)
            .args(["-c", "sleep 30; true", "--model", &blob, "--port", "1"])
            .spawn()
            .unwrap(),
    );
    let discovery = Kill(
        Command::new(&exe)
            .args([
                "-c",
                "sleep 30; true",
                "--port",
                "2",
                "--host",
                "127.0.0.1",
                "--no-webui",
            ])
            .spawn()
            .unwrap(),
    );
    let (want, unwanted) = (with_model.0.id(), discovery.0.id());

    let mut scanner = RunnerScanner::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let runners = scanner.scan();
        if runners.iter().any(|r| r.pid == want) || Instant::now() > deadline {
            break runners;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let r = found
        .iter()
        .find(|r| r.pid == want)
        .expect("runner with --model found");
    assert_eq!(r.model_path, blob);
    assert_eq!(r.exe, "llama-server");
    assert!(r.cmdline.iter().any(|a| a == "--model"));
    assert!(r.rss_bytes > 0);
    assert!(r.has_blob_path());
    assert!(
        found.iter().all(|r| r.pid != unwanted),
        "discovery process must be ignored"
    );
    // A second scan with the same long-lived System still sees it (CPU usage is a delta).
    assert!(scanner.scan().iter().any(|r| r.pid == want));
    drop(with_model);
    drop(discovery);
}

fn fake_runner(exe: &std::path::Path, blob: &str, script: &str) -> Kill {
    Kill(
        Command::new(exe)
            .args(["-c", script, "--model", blob, "--port", "1"])
            .spawn()
            .expect("spawn a stand-in runner"),
    )
}

/// Between full scans only known runners are refreshed; a known runner that exits and is
/// replaced (same blob, new pid) is found by the full scan that `refresh_known` then runs
/// itself, in the same call.
#[test]
fn a_replaced_runner_is_found_by_the_next_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("llama-server");
    std::os::unix::fs::symlink("/bin/sh", &exe).unwrap();
    let blob = format!("/tmp/x/blobs/sha256-{}", "cd".repeat(32));
    let first = fake_runner(&exe, &blob, "sleep 30; true");
    let old = first.0.id();

    let mut scanner = RunnerScanner::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scanner.scan().iter().any(|r| r.pid == old) {
        assert!(Instant::now() < deadline, "first runner never seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let scans = scanner.full_scans();
    assert!(scanner.refresh_known().iter().any(|r| r.pid == old));
    assert_eq!(
        scanner.full_scans(),
        scans,
        "a quiet refresh reads known pids only"
    );

    drop(first);
    let second = fake_runner(&exe, &blob, "sleep 30; true");
    let new = second.0.id();
    let runners = scanner.refresh_known();
    assert!(
        runners.iter().any(|r| r.pid == new && r.model_path == blob),
        "replacement not found: {runners:?}"
    );
    assert!(runners.iter().all(|r| r.pid != old));
    assert_eq!(scanner.full_scans(), scans + 1, "exactly one full scan");
    drop(second);
}

/// CPU use is a rate over an interval: a busy runner sampled twice reads well above 0.
#[test]
fn cpu_use_is_measured_over_an_interval() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("llama-server");
    std::os::unix::fs::symlink("/bin/sh", &exe).unwrap();
    let blob = format!("/tmp/x/blobs/sha256-{}", "ef".repeat(32));
    let busy = fake_runner(&exe, &blob, "while :; do :; done");
    let pid = busy.0.id();
    // sysinfo treats a process with no CPU time at all as "first seen"; a real runner has
    // run for a while when we look.
    std::thread::sleep(Duration::from_millis(300));
    let mut scanner = RunnerScanner::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scanner.scan().iter().any(|r| r.pid == pid) {
        assert!(Instant::now() < deadline, "busy runner never seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The truth to compare with: the kernel's own CPU-time counters over the same interval.
    // A fixed threshold would flake on a loaded CI machine, where the busy loop may get little
    // of a core; the scanner must agree with the kernel whatever share it got.
    let (ticks_before, at_before) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(yollayah_core::machine::CPU_SAMPLE_INTERVAL);
    let r = scanner
        .refresh_known()
        .into_iter()
        .find(|r| r.pid == pid)
        .expect("still there");
    let (ticks_after, at_after) = (cpu_ticks(pid), Instant::now());
    let truth = (ticks_after - ticks_before) as f64
        / clock_ticks_per_second()
        / (at_after - at_before).as_secs_f64()
        * 100.0;
    assert!(
        (r.cpu_percent as f64 - truth).abs() <= 10.0 + truth * 0.35,
        "scanner says {} %, the kernel {truth:.1} %",
        r.cpu_percent
    );
    if truth >= 10.0 {
        assert!(
            r.cpu_percent > 0.0,
            "a runner using {truth:.1} % read as idle"
        );
    }
    drop(busy);
}

/// utime + stime of `pid`, in clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the runner's stat");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0] here, so utime (14) and stime (15) are 11 and 12.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

#[test]
fn a_killed_runner_not_yet_reaped_is_not_a_runner() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("llama-server");
    std::os::unix::fs::symlink("/bin/sh", &exe).unwrap();
    let blob = format!("/tmp/z/blobs/sha256-{}", "cd".repeat(32));
    let mut child = Command::new(&exe)
        .args(["-c", "sleep 30; true", "--model", &blob, "--port", "3"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut scanner = RunnerScanner::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scanner.scan().iter().any(|r| r.pid == pid) {
        assert!(Instant::now() < deadline, "the live runner was never found");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed but not waited for: a zombie, as a runner is until Ollama reaps it.
    child.kill().unwrap();
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "the child never became a zombie");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !scanner.scan().iter().any(|r| r.pid == pid),
        "a zombie was listed as a runner"
    );
    assert!(
        !scanner.refresh_known().iter().any(|r| r.pid == pid),
        "a zombie was kept as a known runner"
    );
    child.wait().unwrap();
}
