//! Test support shared by Yollayah's crates (dev-dependency only).
//!
//! [`netns`]: a private network namespace joined to this one by a veth pair, so a test can put
//! a server at an address that is *not* this machine's (a "remote" Ollama) and tear it all down
//! afterwards.
//!
//! [`mutate`]: replays a fuzz target's corpus and seeded random mutations of it in a normal
//! `cargo test`.

pub mod mutate;
pub mod netns;
