//! Fuzz target: the `/api/show` `parameters` text parser on arbitrary UTF-8. Never panics,
//! and every entry it keeps has a non-empty key without whitespace (a key is the first word
//! of a line) and a finite number when numeric.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_core::ollama::params::{ParamValue, Parameters};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Parameters::parse(text);
    assert!(p.entries.len() <= text.lines().count());
    for (key, value) in &p.entries {
        assert!(
            !key.is_empty() && !key.contains(char::is_whitespace),
            "bad key {key:?}"
        );
        if let ParamValue::Number(n) = value {
            assert!(n.is_finite());
        }
        let _ = p.get_i64(key);
        assert!(p.get_all(key).count() >= 1);
    }
    for key in ["num_ctx", "num_gpu", "stop", "temperature"] {
        let _ = p.get_i64(key);
    }
});
