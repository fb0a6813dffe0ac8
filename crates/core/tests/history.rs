//! History store: lifecycle of messages, crash recovery, migrations, corrupt and locked files.

// Helpers outside #[test] fns are test code too; clippy.toml only exempts the fns.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use yollayah_core::Error;
use yollayah_core::history::{History, INTERRUPTED, MessageStatus, SCHEMA_VERSION};
use yollayah_core::ollama::types::Metrics;

#[test]
fn message_lifecycle() {
    let mut h = History::open_in_memory().unwrap();
    let c = h
        .create_conversation("First chat", "llama3.2:3b", "Yollayah")
        .unwrap();
    let u = h.add_user_message(c, "hello").unwrap();
    assert_eq!(h.messages(c).unwrap()[0].status, MessageStatus::Pending);

    let r = h.begin_reply(c).unwrap();
    let msgs = h.messages(c).unwrap();
    assert_eq!((msgs[0].id, &msgs[0].status), (u, &MessageStatus::Complete));
    assert_eq!(
        (msgs[1].id, &msgs[1].status),
        (r, &MessageStatus::Streaming)
    );

    h.save_partial(r, "Hel").unwrap();
    assert_eq!(h.messages(c).unwrap()[1].content, "Hel");
    let metrics = Metrics {
        eval_count: Some(3),
        eval_duration: Some(1_000_000),
        ..Metrics::default()
    };
    h.finish_reply(r, "Hello!", Some(&metrics)).unwrap();
    let reply = &h.messages(c).unwrap()[1];
    assert_eq!(reply.content, "Hello!");
    assert_eq!(reply.status, MessageStatus::Complete);
    assert_eq!(reply.metrics, Some(metrics));
    assert_eq!(reply.to_message().role, "assistant");
    // A finished reply cannot be overwritten by a late checkpoint.
    assert!(matches!(
        h.save_partial(r, "late"),
        Err(Error::History { .. })
    ));

    h.add_user_message(c, "tell me more").unwrap();
    let r2 = h.begin_reply(c).unwrap();
    h.mark_incomplete(r2, "Well", "cancelled").unwrap();
    let last = h.messages(c).unwrap().pop().unwrap();
    assert_eq!(last.content, "Well");
    assert_eq!(
        last.status,
        MessageStatus::Incomplete {
            reason: "cancelled".into()
        }
    );

    assert!(matches!(
        h.add_user_message(yollayah_core::history::ConversationId(999), "x"),
        Err(Error::History { .. })
    ));
}

#[test]
fn list_is_newest_first_with_preview() {
    let mut h = History::open_in_memory().unwrap();
    let a = h.create_conversation("A", "m", "p").unwrap();
    let b = h.create_conversation("B", "m", "p").unwrap();
    h.add_user_message(a, &"long ".repeat(100)).unwrap();
    let list = h.list_conversations(10).unwrap();
    assert_eq!(list.len(), 2);
    // `a` was touched last (same-millisecond ties are broken by id, so check content too).
    let first = list.iter().find(|s| s.id == a).unwrap();
    assert_eq!(first.message_count, 1);
    // The first 120 characters, as plain text (whitespace collapsed and trimmed).
    assert_eq!(
        first.preview.as_deref(),
        Some("long ".repeat(24).trim_end())
    );
    assert!(list.iter().find(|s| s.id == b).unwrap().preview.is_none());
    assert!(list[0].updated_at >= list[1].updated_at);
    assert_eq!(h.list_conversations(1).unwrap().len(), 1);
}

#[test]
fn crash_leaves_streaming_which_becomes_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    let (c, r) = {
        let mut h = History::open(&path).unwrap();
        let c = h.create_conversation("t", "m", "p").unwrap();
        h.add_user_message(c, "q").unwrap();
        let r = h.begin_reply(c).unwrap();
        h.save_partial(r, "partial answ").unwrap();
        (c, r)
        // Dropped without finish_reply: as if the process died mid-stream.
    };
    let h = History::open(&path).unwrap();
    let msg = h
        .messages(c)
        .unwrap()
        .into_iter()
        .find(|m| m.id == r)
        .unwrap();
    assert_eq!(msg.content, "partial answ");
    assert_eq!(
        msg.status,
        MessageStatus::Incomplete {
            reason: INTERRUPTED.into()
        }
    );
}

#[test]
fn v1_database_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    {
        // The v1 schema exactly as the first release wrote it.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
                model TEXT NOT NULL, persona TEXT NOT NULL, created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL);
             CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL
                REFERENCES conversations(id) ON DELETE CASCADE, role TEXT NOT NULL,
                content TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
                metrics TEXT);
             INSERT INTO conversations VALUES (1, 'old', 'm', 'p', 1000, 2000);
             INSERT INTO messages VALUES (1, 1, 'user', 'old question', 'complete', 1000, NULL);
             INSERT INTO messages VALUES (2, 1, 'assistant', 'half', 'streaming', 1500, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut h = History::open(&path).unwrap();
    let msgs = h
        .messages(yollayah_core::history::ConversationId(1))
        .unwrap();
    assert_eq!(msgs[0].content, "old question");
    // The v2 column exists and crash recovery used it.
    assert_eq!(
        msgs[1].status,
        MessageStatus::Incomplete {
            reason: INTERRUPTED.into()
        }
    );
    let c = h.create_conversation("new", "m", "p").unwrap();
    h.add_user_message(c, "works").unwrap();
    drop(h);
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite3");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 5))
        .unwrap();
    let err = History::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer Yollayah"), "{err}");
}

#[test]
fn garbage_file_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&path, &garbage).unwrap();
    let err = History::open(&path).unwrap_err();
    assert!(matches!(err, Error::HistoryCorrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("h.sqlite3"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), garbage);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no -wal/-shm/new files"
    );
}

#[test]
fn damaged_database_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    {
        let mut h = History::open(&path).unwrap();
        let c = h.create_conversation("t", "m", "p").unwrap();
        for i in 0..200 {
            h.add_user_message(c, &format!("message number {i} with some text"))
                .unwrap();
        }
    }
    // Fold the WAL into the main file so that the damage below hits real data.
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .unwrap();
    let mut bytes = fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096);
    // Keep the 100-byte header valid, smash the pages after the first.
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    fs::write(&path, &bytes).unwrap();
    let err = History::open(&path).unwrap_err();
    assert!(matches!(err, Error::HistoryCorrupt { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn lock_held_elsewhere_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    let timeout = Duration::from_millis(300);
    let mut h = History::open_with_busy_timeout(&path, timeout).unwrap();
    let c = h.create_conversation("t", "m", "p").unwrap();

    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE;").unwrap();

    let start = Instant::now();
    let err = h.add_user_message(c, "blocked").unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, Error::HistoryLocked { .. }), "{err:?}");
    assert!(
        waited >= timeout && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // Opening while locked also fails cleanly.
    let err = History::open_with_busy_timeout(&path, timeout).unwrap_err();
    assert!(matches!(err, Error::HistoryLocked { .. }), "{err:?}");

    other.execute_batch("COMMIT;").unwrap();
    h.add_user_message(c, "unblocked").unwrap();
    assert_eq!(h.messages(c).unwrap().len(), 1);
}

#[test]
fn the_question_and_its_reply_row_are_stored_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    let mut h = History::open(&path).unwrap();
    let c = h.create_conversation("t", "m", "p").unwrap();
    let (u, r) = h.begin_exchange(c, "first", &[]).unwrap();
    let msgs = h.messages(c).unwrap();
    assert_eq!((msgs[0].id, &msgs[0].status), (u, &MessageStatus::Complete));
    assert_eq!(
        (msgs[1].id, &msgs[1].status),
        (r, &MessageStatus::Streaming)
    );
    h.finish_reply(r, "ok", None).unwrap();

    // The reply row's insert fails (a stand-in for a full disk at that moment): the question
    // must not be left behind without it.
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER no_replies BEFORE INSERT ON messages WHEN NEW.role = 'assistant'
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    let err = h.begin_exchange(c, "second", &[]).unwrap_err();
    assert!(matches!(err, Error::History { .. }), "{err:?}");
    let contents: Vec<String> = h
        .messages(c)
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents, ["first", "ok"]);
}

#[test]
fn images_are_stored_with_their_message_atomically_and_removed_with_the_conversation() {
    use yollayah_core::history::NewImage;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    let png = [0x89u8, b'P', b'N', b'G', 1, 2, 3];
    let jpeg = [0xffu8, 0xd8, 0xff, 9, 9];
    let images = [
        NewImage {
            mime: "image/jpeg",
            width: 1120,
            height: 840,
            data: &jpeg,
        },
        NewImage {
            mime: "image/png",
            width: 40,
            height: 30,
            data: &png,
        },
    ];
    let (c, keep) = {
        let mut h = History::open(&path).unwrap();
        let c = h.create_conversation("pics", "gemma3:4b", "p").unwrap();
        let (_, r) = h.begin_exchange(c, "what is this?", &images).unwrap();
        h.finish_reply(r, "a cat", None).unwrap();
        let keep = h.create_conversation("other", "gemma3:4b", "p").unwrap();
        h.begin_exchange(keep, "and this?", &images[1..]).unwrap();
        (c, keep)
    };
    // Reopened from disk: the images are there, in order, with their bytes.
    let mut h = History::open(&path).unwrap();
    let msgs = h.messages(c).unwrap();
    let refs = &msgs[0].images;
    assert_eq!(
        refs.iter()
            .map(|i| (i.mime.as_str(), i.width, i.height))
            .collect::<Vec<_>>(),
        [("image/jpeg", 1120, 840), ("image/png", 40, 30)]
    );
    assert!(msgs[1].images.is_empty(), "the reply has none");
    assert_eq!(
        h.image_data(refs[0].id).unwrap().as_deref(),
        Some(&jpeg[..])
    );
    assert_eq!(h.image_data(refs[1].id).unwrap().as_deref(), Some(&png[..]));

    // A failed exchange stores no image: message and images are one transaction.
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER no_replies BEFORE INSERT ON messages WHEN NEW.role = 'assistant'
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    let count = |conn: &Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM images", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&other), 3);
    assert!(h.begin_exchange(c, "again", &images).is_err());
    assert_eq!(count(&other), 3, "no image of the failed exchange remains");
    other.execute_batch("DROP TRIGGER no_replies;").unwrap();

    // Deleting the conversation deletes its images, and only its images.
    h.delete_conversation(c).unwrap();
    assert_eq!(h.image_data(refs[0].id).unwrap(), None);
    assert_eq!(h.image_data(refs[1].id).unwrap(), None);
    assert_eq!(count(&other), 1);
    assert_eq!(h.messages(keep).unwrap()[0].images.len(), 1);
}

/// A database exactly as the v3 release left it (user_version 3, no `settings` table), with a
/// conversation, a stored image and a reply cut off mid-stream.
fn v3_database(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
            model TEXT NOT NULL, persona TEXT NOT NULL, created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL);
         CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL
            REFERENCES conversations(id) ON DELETE CASCADE, role TEXT NOT NULL,
            content TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
            metrics TEXT);
         ALTER TABLE messages ADD COLUMN status_reason TEXT;
         CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
         CREATE INDEX messages_by_status ON messages(status);
         CREATE INDEX conversations_by_update ON conversations(updated_at DESC, id DESC);
         ALTER TABLE messages ADD COLUMN thinking TEXT;
         ALTER TABLE messages ADD COLUMN thinking_ms INTEGER;
         CREATE TABLE images (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL
            REFERENCES messages(id) ON DELETE CASCADE, position INTEGER NOT NULL,
            mime TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
            data BLOB NOT NULL);
         CREATE INDEX images_by_message ON images(message_id, position);
         INSERT INTO conversations VALUES (1, 'kept', 'qwen3:8b', 'p', 1000, 2000);
         INSERT INTO messages VALUES (1, 1, 'user', 'a question', 'complete', 1000, NULL,
            NULL, NULL, NULL);
         INSERT INTO messages VALUES (2, 1, 'assistant', 'an answer', 'complete', 1100, NULL,
            NULL, 'pondered', 40);
         INSERT INTO messages VALUES (3, 1, 'assistant', 'cut', 'streaming', 1200, NULL,
            NULL, NULL, NULL);
         INSERT INTO images VALUES (1, 1, 0, 'image/png', 2, 3, X'89504E47');
         PRAGMA user_version = 3;",
    )
    .unwrap();
}

#[test]
fn a_v3_database_upgrades_keeping_its_conversations_and_gains_the_choice() {
    use yollayah_core::history::{ConversationId, StoredChoice};
    use yollayah_core::ollama::types::Think;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.sqlite3");
    v3_database(&path);
    let mut h = History::open(&path).unwrap();
    let list = h.list_conversations(10).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].title.as_str(), list[0].model.as_str()),
        ("kept", "qwen3:8b")
    );
    let msgs = h.messages(ConversationId(1)).unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].content, "a question");
    assert_eq!(msgs[0].images.len(), 1);
    assert_eq!(
        h.image_data(msgs[0].images[0].id).unwrap().unwrap(),
        b"\x89PNG"
    );
    assert_eq!(msgs[1].thinking.as_deref(), Some("pondered"));
    assert_eq!(
        msgs[2].status,
        MessageStatus::Incomplete {
            reason: INTERRUPTED.into()
        }
    );
    // Nothing stored yet: the config decides.
    assert_eq!(h.load_choice().unwrap(), StoredChoice::default());
    let choice = StoredChoice {
        model: Some("qwen3:8b".into()),
        think: [("qwen3:8b".to_owned(), Think::Off)].into(),
        host: None,
    };
    h.save_choice(&choice).unwrap();
    drop(h);

    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(
        SCHEMA_VERSION, 4,
        "this test upgrades from the version before"
    );
    drop(conn);
    let h = History::open(&path).unwrap();
    assert_eq!(h.load_choice().unwrap(), choice);
    assert_eq!(h.messages(ConversationId(1)).unwrap().len(), 3);
}

#[test]
fn the_choice_round_trips_and_each_save_replaces_the_last() {
    use yollayah_core::history::StoredChoice;
    use yollayah_core::ollama::types::Think;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    let full = StoredChoice {
        model: Some("hf.co/org/Model-GGUF:Q4_K_M".into()),
        think: [
            ("qwen3:8b".to_owned(), Think::Off),
            ("gpt-oss:20b".to_owned(), Think::Low),
            ("deepseek-r1:8b".to_owned(), Think::On),
            ("gpt-oss:120b".to_owned(), Think::High),
            ("gpt-oss:latest".to_owned(), Think::Medium),
        ]
        .into(),
        host: Some("closet".into()),
    };
    {
        let mut h = History::open(&path).unwrap();
        // Saving the same choice twice is no conflict (the old rows go first).
        h.save_choice(&full).unwrap();
        h.save_choice(&full).unwrap();
    }
    // Another setting, outside the picker's keys, is left alone by every save below.
    Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO settings VALUES ('other.setting', 'x')", [])
        .unwrap();
    let mut h = History::open(&path).unwrap();
    assert_eq!(h.load_choice().unwrap(), full);

    // Back to the watched model, this machine, one think value left.
    let smaller = StoredChoice {
        model: None,
        think: [("qwen3:8b".to_owned(), Think::On)].into(),
        host: None,
    };
    h.save_choice(&smaller).unwrap();
    drop(h);
    let mut h = History::open(&path).unwrap();
    assert_eq!(h.load_choice().unwrap(), smaller);
    h.save_choice(&StoredChoice::default()).unwrap();
    assert_eq!(h.load_choice().unwrap(), StoredChoice::default());
    drop(h);
    let conn = Connection::open(&path).unwrap();
    let rows: Vec<String> = conn
        .prepare("SELECT key FROM settings ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, ["other.setting"]);
}

#[test]
fn unreadable_stored_choices_are_skipped_not_fatal() {
    use yollayah_core::history::StoredChoice;
    use yollayah_core::ollama::types::Think;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    drop(History::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO settings VALUES ('picker.model', X'00FF');
             INSERT INTO settings VALUES ('picker.host', '   ');
             INSERT INTO settings VALUES ('picker.think.qwen3:8b', 'maybe');
             INSERT INTO settings VALUES ('picker.think.', 'on');
             INSERT INTO settings VALUES ('picker.colour', 'teal');
             INSERT INTO settings VALUES ('picker.think.gpt-oss:20b', 'low');",
        )
        .unwrap();
    let h = History::open(&path).unwrap();
    assert_eq!(
        h.load_choice().unwrap(),
        StoredChoice {
            model: None,
            think: [("gpt-oss:20b".to_owned(), Think::Low)].into(),
            host: None,
        }
    );
}
