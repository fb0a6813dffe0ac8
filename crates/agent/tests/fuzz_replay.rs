//! The `agent_http` fuzz target (`fuzz/fuzz_targets/agent_http.rs`, whose body is
//! `yollayah_agent::fuzzing::agent_http`) on its committed corpus and on a few thousand seeded
//! mutations of it, in a normal `cargo test`. A failure names the input and saves it.

use std::path::PathBuf;

use yollayah_agent::fuzzing::{READ, WRITE, agent_http};
use yollayah_testkit::mutate::replay;

#[test]
fn agent_http_corpus_and_mutations() {
    let dict: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"HEAD ",
        b" HTTP/1.1\r\n",
        b"\r\n\r\n",
        b"/metrics",
        b"/healthz",
        b"/api/v1/state",
        b"/api/v1/events",
        b"/api/v1/warm",
        b"/api/v1/unload",
        b"Host: localhost\r\n",
        b"Host: [::1]:9811\r\n",
        b"Authorization: Bearer ",
        b"Authorization: bearer\t",
        READ.as_bytes(),
        WRITE.as_bytes(),
        b"Accept: application/openmetrics-text;version=1.0.0;q=0.5\r\n",
        b";q=",
        b"Content-Type: application/json\r\n",
        b"Content-Length: 99999\r\n",
        b"{\"model\":\"llama3.2:3b\"}",
    ];
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/agent_http");
    let r = replay("agent_http", &corpus, dict, 5000, 0x5eed_a9e7, agent_http);
    eprintln!(
        "agent_http: {} corpus files, {} mutations in {:?}",
        r.corpus, r.mutations, r.elapsed
    );
}
