//! Fuzz target: capture bundles (`doctor --from FILE`) as arbitrary text, then a full
//! diagnosis of whatever parses. A bug report file is untrusted input: neither step may
//! panic or allocate without bound (the script runs this with a small `-malloc_limit_mb`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_core::capture::CaptureBundle;
use yollayah_core::diagnose::diagnose;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match CaptureBundle::from_json(text) {
        Ok(bundle) => {
            let report = diagnose(&bundle.observation());
            for d in &report {
                let _ = format!("{d:?}");
                let _ = d.top();
            }
            assert!(bundle.to_json().is_ok(), "parsed bundle does not serialise");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
