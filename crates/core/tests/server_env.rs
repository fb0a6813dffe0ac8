//! The Ollama server's own environment is read from its process, not assumed to be ours: a
//! real child process whose argv is `ollama serve` (this test binary, started again through a
//! symlink named `ollama`) with a chosen environment.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use yollayah_core::gpu::RunnerScanner;
use yollayah_core::gpu::runners::read_server_env;
use yollayah_core::ollama::env::{EnvSource, OllamaEnv, ServerEnv};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const HELPER_ENV: &str = "YOLLAYAH_TEST_FAKE_SERVE";

/// Not a test of its own: the body of the stand-in `ollama serve` below, which only waits.
#[test]
#[ignore = "helper process for the server environment tests"]
fn fake_serve_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    std::thread::sleep(Duration::from_secs(30));
}

/// Starts `<dir>/ollama serve …` with `vars` added to the environment. libtest takes `serve`
/// as one more name filter; with `--exact` only the helper runs.
fn fake_serve(dir: &Path, vars: &[(&str, &str)]) -> Kill {
    let exe = dir.join("ollama");
    if !exe.exists() {
        let me = std::env::current_exe().expect("test binary path");
        std::os::unix::fs::symlink(me, &exe).expect("symlink named ollama");
    }
    let mut cmd = Command::new(&exe);
    cmd.env(HELPER_ENV, "1")
        .args([
            "serve",
            "--ignored",
            "--exact",
            "--test-threads=1",
            "--quiet",
            "fake_serve_helper",
        ])
        .stdout(std::process::Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = Kill(cmd.spawn().expect("start the stand-in server"));
    // Wait until the exec is done: before it, /proc shows the parent's argv and environment.
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(exe.as_os_str().as_encoded_bytes())
            && cmdline.windows(6).any(|w| w == b"\0serve")
        {
            break;
        }
        assert!(Instant::now() < deadline, "helper never exec'd");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// Values nobody sets in the test's own environment, so reading ours cannot pass.
const FIRST: &[(&str, &str)] = &[
    ("OLLAMA_NUM_PARALLEL", "7"),
    ("CUDA_VISIBLE_DEVICES", "GPU-test-hidden"),
    ("OLLAMA_CONTEXT_LENGTH", "12288"),
    ("OLLAMA_KV_CACHE_TYPE", "q4_0"),
];

#[test]
fn the_server_s_environment_is_read_from_its_process_once_per_pid() {
    assert_ne!(
        std::env::var("OLLAMA_NUM_PARALLEL").ok().as_deref(),
        Some("7")
    );
    let dir = tempfile::tempdir().unwrap();
    let server = fake_serve(dir.path(), FIRST);
    let pid = server.0.id();

    // Reading the process directly: its environment, not ours.
    let ServerEnv::Read(env) = read_server_env(pid) else {
        panic!("environ of our own child must be readable");
    };
    assert_eq!(env.source, EnvSource::Server { pid });
    assert_eq!(env.num_parallel.as_deref(), Some("7"));
    assert_eq!(env.cuda_visible_devices.as_deref(), Some("GPU-test-hidden"));
    assert_eq!(env.context_length.as_deref(), Some("12288"));
    assert_eq!(env.kv_cache_type.as_deref(), Some("q4_0"));
    assert_ne!(env, OllamaEnv::from_process_env());

    let mut scanner = RunnerScanner::new();
    assert!(scanner.scan().iter().all(|r| r.pid != pid), "not a runner");
    assert!(scanner.servers().contains(&pid), "{:?}", scanner.servers());
    if scanner.servers() != [pid] {
        // Another `ollama serve` runs on this machine and no runner says which one is ours:
        // the scanner must refuse to guess. The rest needs ours alone.
        assert!(matches!(scanner.server_env(), ServerEnv::Missing(_)));
        eprintln!(
            "skipping the rest: other ollama serve processes {:?}",
            scanner.servers()
        );
        return;
    }
    assert_eq!(scanner.server_env(), &ServerEnv::Read(env.clone()));
    assert_eq!(scanner.server_env_reads(), 1);
    // Ticks refresh the known processes; the environment is not read again.
    for _ in 0..3 {
        scanner.refresh_known();
    }
    assert_eq!(scanner.server_env(), &ServerEnv::Read(env));
    assert_eq!(scanner.server_env_reads(), 1, "read once per server pid");

    // The server stops: the next tick notices and falls back, saying why.
    drop(server);
    scanner.refresh_known();
    let ServerEnv::Missing(why) = scanner.server_env() else {
        panic!("a stopped server's environment must not linger");
    };
    assert!(why.contains("no ollama serve"), "{why}");
    let ours = OllamaEnv::default();
    let used = scanner.server_env().or_ours(&ours);
    assert!(matches!(used.source, EnvSource::Ours { note: Some(_) }));

    // A restarted server with another environment: read again, for the new pid.
    let again = fake_serve(dir.path(), &[("OLLAMA_NUM_PARALLEL", "2")]);
    scanner.scan();
    let ServerEnv::Read(env2) = scanner.server_env() else {
        panic!("restarted server not read: {:?}", scanner.server_env());
    };
    assert_eq!(env2.source, EnvSource::Server { pid: again.0.id() });
    assert_eq!(env2.num_parallel.as_deref(), Some("2"));
    assert_eq!(env2.cuda_visible_devices, None);
    assert_eq!(scanner.server_env_reads(), 2);
}

#[test]
fn an_unreadable_server_environment_says_why() {
    let ServerEnv::Missing(why) = read_server_env(u32::MAX - 1) else {
        panic!("no such process");
    };
    assert!(why.contains("environ"), "{why}");
}
