//! Every fixture under `tests/valid_configs` parses; every one under `tests/invalid_configs`
//! fails with a message naming the key, quoting the value and giving the line. Each invalid
//! fixture's first line is `# expect: A | B`: substrings the message must contain.

// Helpers outside #[test] fns are test code too; clippy.toml only exempts the fns.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yollayah_core::Error;
use yollayah_core::config::Config;
use yollayah_core::ollama::types::KeepAlive;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn valid_configs_parse() {
    for file in fixtures("valid_configs") {
        if let Err(e) = Config::load(&file) {
            panic!("{} should parse: {e}", file.display());
        }
    }
}

#[test]
fn invalid_configs_fail_naming_key_and_value() {
    for file in fixtures("invalid_configs") {
        let text = fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", file.display()));
        let err = Config::load(&file).expect_err(&file.display().to_string());
        let Error::Config { line_col, .. } = &err else {
            panic!("{}: wrong error kind {err:?}", file.display());
        };
        assert_eq!(
            line_col.map(|(l, _)| l),
            Some(3),
            "{}: {err}",
            file.display()
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("{}:3:", file.display())),
            "{message}"
        );
        for needle in expect.split(" | ") {
            assert!(
                message.contains(needle),
                "{}: message {message:?} lacks {needle:?}",
                file.display()
            );
        }
    }
}

#[test]
fn missing_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&dir.path().join("nope.toml")).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = Config::default();
    assert_eq!(c.model.keep_alive, KeepAlive::FOREVER);
    assert_eq!(c.watchdog.tick(), Duration::from_secs(2));
    assert!(c.watchdog.rewarm);
    assert_eq!(c.alerts.cooldown(), Duration::from_secs(60));
    assert!(c.alerts.on_partial && c.alerts.enabled);
    assert_eq!(c.alerts.min_cpu_pct, 5.0);
    assert_eq!(c.ollama.url, None);
    assert!(c.model.load.is_empty());
    assert_eq!(c.shortcut.toggle_chat.to_string(), "Super+Y");
}

#[test]
fn full_fixture_values_are_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid_configs/full.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.ollama.url.as_deref(), Some("http://127.0.0.1:11434"));
    assert_eq!(c.ollama.connect_timeout(), Duration::from_millis(1500));
    assert_eq!(c.model.name.as_deref(), Some("qwen2.5:7b"));
    assert_eq!(c.model.keep_alive, KeepAlive::Duration("24h".into()));
    assert_eq!(c.model.load.num_ctx, Some(8192));
    assert_eq!(c.model.load.num_gpu, Some(-1));
    assert_eq!(c.model.load.use_mmap, Some(true));
    assert_eq!(c.watchdog.tick_ms, 1000);
    assert!(!c.alerts.on_partial);
    assert_eq!(c.alerts.min_cpu_pct, 12.5);
    let toggle = c.shortcut.toggle_chat.accelerator().unwrap();
    assert_eq!(toggle.xdg_trigger(), "CTRL+ALT+space");
    assert_eq!(
        c.history_path().unwrap(),
        PathBuf::from("/tmp/yollayah-history.sqlite3")
    );
    assert_eq!(
        c.persona_path().unwrap(),
        PathBuf::from("/home/me/personas/pirate.md")
    );
}

#[test]
fn keep_alive_number_is_seconds() {
    let c = Config::parse("[model]\nkeep_alive = 1.5\n", Path::new("t.toml")).unwrap();
    assert_eq!(c.model.keep_alive, KeepAlive::Seconds(1.5));
    let c = Config::parse("[model]\nkeep_alive = -1\n", Path::new("t.toml")).unwrap();
    assert_eq!(c.model.keep_alive, KeepAlive::FOREVER);
}

#[test]
fn shown_config_round_trips() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid_configs/full.toml");
    let c = Config::load(&path).unwrap();
    let shown = c.to_toml_string().unwrap();
    let back = Config::parse(&shown, Path::new("shown.toml")).unwrap();
    assert_eq!(back, c);
    // Defaults are written out, so the user sees the effective value of every key.
    let shown = Config::default().to_toml_string().unwrap();
    assert!(shown.contains("tick_ms = 2000"), "{shown}");
    assert!(shown.contains("keep_alive = -1"), "{shown}");
    assert!(shown.contains("history.sqlite3"), "{shown}");
    assert!(shown.contains("toggle_chat = \"Super+Y\""), "{shown}");
}
