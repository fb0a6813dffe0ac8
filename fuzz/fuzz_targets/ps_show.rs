//! Fuzz target: `/api/ps` and `/api/show` responses as arbitrary bytes. Neither may panic,
//! and whatever parses must serialise again (the capture bundle writes them back out).
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_core::ollama::types::{PsResponse, ShowResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(ps) = serde_json::from_slice::<PsResponse>(data) {
        for m in &ps.models {
            let _ = format!("{m:?}");
        }
        assert!(
            serde_json::to_vec(&ps).is_ok(),
            "parsed /api/ps does not serialise"
        );
    }
    if let Ok(show) = serde_json::from_slice::<ShowResponse>(data) {
        assert!(
            serde_json::to_vec(&show).is_ok(),
            "parsed /api/show does not serialise"
        );
    }
});
