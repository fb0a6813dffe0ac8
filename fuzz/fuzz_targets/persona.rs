//! Fuzz target: persona files (TOML front matter + Markdown body) as arbitrary text. Parsing
//! and rendering the error (which turns a byte offset into line:column) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_core::ollama::types::Message;
use yollayah_core::persona::Persona;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Persona::parse(text, "fuzz/persona.md") {
        Ok(p) => {
            assert!(!p.name().trim().is_empty());
            assert!(!p.model().trim().is_empty());
            assert!(!p.system_prompt().trim().is_empty());
            let user = Message::new("user", "hi");
            let msgs = p.compose(&[], &user);
            assert_eq!(msgs.len(), 2);
            let _ = p.request_options(p.load_options());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
