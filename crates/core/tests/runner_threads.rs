//! A runner with many threads is one runner. sysinfo lists each Linux thread as a process with
//! its process's name and argv; on a GPU machine one llama-server showed up as 35 runners.
//! Its own test binary: the stand-in runner is this binary started again, and other tests'
//! runners vanishing mid-sample would disturb the scans of the tests in runner_discovery.rs.
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

const THREADED_HELPER_ENV: &str = "YOLLAYAH_TEST_THREADED_RUNNER";

/// Not a test of its own: the body of the multi-threaded stand-in runner below. This test
/// binary, started again through a symlink named `llama-server` with `--model` in its argv,
/// runs only this function, which keeps threads named like the runner alive, one of them busy.
#[test]
#[ignore = "helper process for one_runner_per_process_not_per_thread"]
fn threaded_runner_helper() {
    if std::env::var_os(THREADED_HELPER_ENV).is_none() {
        return;
    }
    // libtest names this thread after the test; a runner's threads carry the runner's name.
    let named = || std::thread::Builder::new().name("llama-server".into());
    named()
        .spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .unwrap();
    for _ in 0..3 {
        named()
            .spawn(|| std::thread::sleep(Duration::from_secs(30)))
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(30));
}

/// sysinfo lists each Linux thread as a process with its process's name and argv: a runner
/// with N threads must still be one runner (its pid), with the CPU of all its threads.
#[test]
fn one_runner_per_process_not_per_thread() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("llama-server");
    std::os::unix::fs::symlink(std::env::current_exe().unwrap(), &exe).unwrap();
    let blob = format!("/tmp/x/blobs/sha256-{}", "9a".repeat(32));
    // After `--`, libtest takes every argument as a test-name filter; with `--exact` only the
    // helper's name matches, so `--model BLOB` is there for the scanner alone.
    let runner = Kill(
        Command::new(&exe)
            .env(THREADED_HELPER_ENV, "1")
            .args([
                "--ignored",
                "--exact",
                "--test-threads=1",
                "--quiet",
                "--",
                "threaded_runner_helper",
                "--model",
                &blob,
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = runner.0.id();
    let mut scanner = RunnerScanner::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait until the helper's busy threads exist (its task folder lists them).
    loop {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        if threads >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "helper has {threads} threads");
        std::thread::sleep(Duration::from_millis(20));
    }
    let found = scanner.scan();
    let mine: Vec<_> = found.iter().filter(|r| r.model_path == blob).collect();
    assert_eq!(
        mine.iter().map(|r| r.pid).collect::<Vec<_>>(),
        vec![pid],
        "one entry, the process itself"
    );
    // The process's own (main) thread only sleeps: anything well above 0 is the busy
    // thread's time, counted in the process's figure. Low bar, and a few samples: on a loaded
    // machine one interval can pass without the busy thread being scheduled.
    let mut cpu = Vec::new();
    for _ in 0..8 {
        std::thread::sleep(yollayah_core::machine::CPU_SAMPLE_INTERVAL);
        let again = scanner.refresh_known();
        assert_eq!(again.iter().filter(|r| r.model_path == blob).count(), 1);
        let r = again
            .iter()
            .find(|r| r.model_path == blob)
            .expect("still there");
        cpu.push(r.cpu_percent);
        if r.cpu_percent > 5.0 {
            break;
        }
    }
    assert!(cpu.iter().any(|c| *c > 5.0), "cpu samples {cpu:?}");
    drop(runner);
}
