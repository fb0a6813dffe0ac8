//! Persona parsing, composition and live reload.

// Helpers outside #[test] fns are test code too; clippy.toml only exempts the fns.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::time::Duration;

use yollayah_core::Error;
use yollayah_core::ollama::types::{Message, MessageRef};
use yollayah_core::persona::{BUNDLED_PERSONA, Persona, PersonaSource, Refresh};

const GOOD: &str = "+++\nname = \"Tester\"\nmodel = \"llama3.2:3b\"\n[options]\ntemperature = 0.5\nstop = [\"END\"]\n[load]\nnum_ctx = 4096\n+++\n\nYou are a tester.\n";

fn persona_err(r: Result<Persona, Error>) -> (Option<(usize, usize)>, String) {
    match r {
        Err(e @ Error::Persona { .. }) => {
            let Error::Persona { line_col, .. } = &e else {
                unreachable!()
            };
            (*line_col, e.to_string())
        }
        other => panic!("expected a persona error, got {other:?}"),
    }
}

#[test]
fn parses_front_matter_and_body() {
    let p = Persona::parse(GOOD, "t.md").unwrap();
    assert_eq!(p.name(), "Tester");
    assert_eq!(p.model(), "llama3.2:3b");
    assert_eq!(p.system_prompt(), "You are a tester.");
    assert_eq!(
        p.system_message(),
        &Message::new("system", "You are a tester.")
    );
    assert_eq!(
        serde_json::Value::Object(p.options().clone()).to_string(),
        r#"{"stop":["END"],"temperature":0.5}"#
    );
    assert_eq!(p.load_options().num_ctx, Some(4096));
    let with_load = p.request_options(p.load_options());
    assert_eq!(with_load.get("num_ctx"), Some(&serde_json::json!(4096)));
}

#[test]
fn bundled_persona_is_valid_and_sized() {
    let p = Persona::parse(BUNDLED_PERSONA, "bundled").unwrap();
    assert_eq!(p.name(), "Yollayah");
    let n = p.system_prompt().chars().count();
    assert!(
        (1700..=2600).contains(&n),
        "system prompt is {n} characters"
    );
    assert!(
        p.options()
            .keys()
            .all(|k| !yollayah_core::ollama::types::LOAD_TIME_OPTIONS.contains(&k.as_str()))
    );
}

#[test]
fn load_time_key_in_options_points_to_load() {
    let text =
        "+++\nname = \"T\"\nmodel = \"m\"\n[options]\ntemperature = 0.5\nnum_ctx = 8192\n+++\nHi\n";
    let (pos, msg) = persona_err(Persona::parse(text, "p.md"));
    assert_eq!(pos, Some((6, 11)), "{msg}");
    assert!(
        msg.contains("num_ctx = 8192") && msg.contains("[load]"),
        "{msg}"
    );
    assert!(msg.starts_with("persona p.md:6:11:"), "{msg}");
}

#[test]
fn toml_errors_have_file_line_numbers() {
    // Line 4 of the file is line 3 of the front matter: the offset must be translated.
    let text = "+++\nname = \"T\"\nmodel = \"m\"\ntemperature 0.5\n+++\nHi\n";
    let (pos, msg) = persona_err(Persona::parse(text, "p.md"));
    assert_eq!(pos.map(|p| p.0), Some(4), "{msg}");
    let text = "+++\nname = \"T\"\nmodel = \"m\"\n[options]\ntemprature = 0.5\n+++\nHi\n";
    let (pos, msg) = persona_err(Persona::parse(text, "p.md"));
    assert_eq!(pos, Some((5, 1)), "{msg}");
    assert!(msg.contains("temprature"), "{msg}");
    let text = "+++\nname = \"T\"\n+++\nHi\n";
    let (_, msg) = persona_err(Persona::parse(text, "p.md"));
    assert!(msg.contains("model"), "{msg}");
}

#[test]
fn structural_errors() {
    let (pos, msg) = persona_err(Persona::parse("You are nice.\n", "p.md"));
    assert_eq!(pos, Some((1, 1)));
    assert!(msg.contains("+++"), "{msg}");
    let (_, msg) = persona_err(Persona::parse(
        "+++\nname = \"T\"\nmodel = \"m\"\nHi\n",
        "p.md",
    ));
    assert!(msg.contains("never closed"), "{msg}");
    let (_, msg) = persona_err(Persona::parse(
        "+++\nname = \"T\"\nmodel = \"m\"\n+++\n  \n",
        "p.md",
    ));
    assert!(msg.contains("no system prompt"), "{msg}");
    // CRLF files and a BOM are fine.
    let p = Persona::parse(
        "\u{feff}+++\r\nname = \"T\"\r\nmodel = \"m\"\r\n+++\r\nHi\r\n",
        "p.md",
    )
    .unwrap();
    assert_eq!(p.system_prompt(), "Hi");
}

#[test]
fn missing_and_non_utf8_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, msg) = persona_err(Persona::load(dir.path().join("none.md")));
    assert!(
        msg.contains("not found") && msg.contains("none.md"),
        "{msg}"
    );
    let bad = dir.path().join("bad.md");
    fs::write(&bad, b"+++\nname = \"T\xff\"\n").unwrap();
    let (pos, msg) = persona_err(Persona::load(&bad));
    assert_eq!(pos, Some((2, 10)), "{msg}");
    assert!(msg.contains("UTF-8"), "{msg}");
    assert!(PersonaSource::open(dir.path().join("none.md")).is_err());
}

#[test]
fn compose_borrows_and_matches_owned_json() {
    let p = Persona::parse(GOOD, "t.md").unwrap();
    let history = vec![
        Message::new("user", "hi"),
        Message::new("assistant", "hello!"),
    ];
    let user = Message::new("user", "how are you?");
    let borrowed = p.compose(&history, &user);
    assert_eq!(borrowed.len(), 4);
    // messages[0] is the persona's own prebuilt text, not a copy.
    assert!(std::ptr::eq(
        borrowed[0].content,
        p.system_message().content.as_str()
    ));
    assert_eq!(borrowed[0], MessageRef::from(p.system_message()));
    let owned = p.compose_owned(&history, user.clone());
    assert_eq!(
        serde_json::to_string(&borrowed).unwrap(),
        serde_json::to_string(&owned).unwrap()
    );
    // Byte-identical prefix on every request (prompt cache reuse).
    let again = p.compose(&history[..1], &user);
    assert_eq!(
        serde_json::to_string(&again[0]).unwrap(),
        serde_json::to_string(&borrowed[0]).unwrap()
    );
}

/// Writes `text` so that the stamp surely changes (length differs or mtime moves on).
fn rewrite(path: &std::path::Path, text: &str) {
    let before = fs::metadata(path)
        .ok()
        .map(|m| (m.modified().unwrap(), m.len()));
    fs::write(path, text).unwrap();
    let after = fs::metadata(path)
        .map(|m| (m.modified().unwrap(), m.len()))
        .unwrap();
    if before == Some(after) {
        // Same length within the filesystem's mtime granularity: push mtime forward.
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(after.0 + Duration::from_secs(1)).unwrap();
    }
}

#[test]
fn watcher_reloads_and_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.md");
    fs::write(&path, GOOD).unwrap();
    let source = PersonaSource::open(&path)
        .unwrap()
        .with_min_interval(Duration::ZERO);
    assert!(matches!(source.refresh(), Refresh::Unchanged));

    rewrite(
        &path,
        &GOOD.replace("You are a tester.", "You are a pirate."),
    );
    assert!(matches!(source.refresh(), Refresh::Reloaded));
    assert_eq!(source.current().system_prompt(), "You are a pirate.");

    // Broken edit: last good stays, error has the position.
    rewrite(
        &path,
        "+++\nname = \"T\"\nmodel = 3\n+++\nYou are broken.\n",
    );
    let Refresh::Failed(e) = source.refresh() else {
        panic!("expected failure")
    };
    assert!(e.to_string().contains("p.md:3:"), "{e}");
    assert_eq!(source.current().system_prompt(), "You are a pirate.");
    assert!(source.last_error().is_some());
    // Not re-parsed until the file changes again.
    assert!(matches!(source.refresh(), Refresh::Unchanged));

    // Deleted: still the last good one.
    fs::remove_file(&path).unwrap();
    assert!(matches!(source.refresh(), Refresh::Failed(_)));
    assert_eq!(source.current().system_prompt(), "You are a pirate.");

    // Restored: reloaded and the error cleared.
    fs::write(&path, GOOD).unwrap();
    assert!(matches!(source.refresh(), Refresh::Reloaded));
    assert_eq!(source.current().system_prompt(), "You are a tester.");
    assert!(source.last_error().is_none());

    // Non-UTF-8 edit: last good kept.
    fs::write(&path, b"+++\nname = \"\xfe\"\nmodel = \"m\"\n+++\nHi\n").unwrap();
    let Refresh::Failed(e) = source.force_refresh() else {
        panic!("expected failure")
    };
    assert!(e.to_string().contains("UTF-8"), "{e}");
    assert_eq!(source.current().system_prompt(), "You are a tester.");
}

#[test]
fn watcher_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.md");
    fs::write(&path, GOOD).unwrap();
    let source = PersonaSource::open(&path)
        .unwrap()
        .with_min_interval(Duration::from_secs(3600));
    rewrite(&path, &GOOD.replace("tester", "changed"));
    assert!(matches!(source.refresh(), Refresh::Skipped));
    assert_eq!(source.current().system_prompt(), "You are a tester.");
    assert!(matches!(source.force_refresh(), Refresh::Reloaded));
    assert_eq!(source.current().system_prompt(), "You are a changed.");
}
