//! `keep_alive` decoding with Go's exact rules and error texts (fact sheet §4): numbers are
//! seconds, strings are Go durations that need a unit, anything negative means forever.

use std::time::Duration;

use serde_json::Value;

/// A decoded keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Negative input: stored upstream as `math.MaxInt64` ns.
    Forever,
    /// Zero = unload after the request.
    For(Duration),
}

impl KeepAlive {
    /// Sort key for eviction (shortest session first); forever sorts last.
    pub fn sort_key(self) -> u128 {
        match self {
            KeepAlive::Forever => u128::MAX,
            KeepAlive::For(d) => d.as_nanos(),
        }
    }
}

/// Decodes the JSON `keep_alive` value. `Ok(None)` = absent/null. `Err` carries the exact text
/// Ollama returns with status 400.
pub fn parse_keep_alive(v: Option<&Value>) -> Result<Option<KeepAlive>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(0.0);
            if secs < 0.0 {
                Ok(Some(KeepAlive::Forever))
            } else {
                // Go converts with `time.Duration(t * float64(time.Second))`, truncating ns.
                let ns = (secs * 1e9).min(i64::MAX as f64) as u64;
                Ok(Some(KeepAlive::For(Duration::from_nanos(ns))))
            }
        }
        Some(Value::String(s)) => match parse_go_duration(s)? {
            ns if ns < 0 => Ok(Some(KeepAlive::Forever)),
            ns => Ok(Some(KeepAlive::For(Duration::from_nanos(
                ns.unsigned_abs(),
            )))),
        },
        Some(other) => Err(format!("Unsupported type: '{}'", go_type_name(other))),
    }
}

/// `OLLAMA_KEEP_ALIVE` parsing, which also accepts bare integer seconds.
pub fn parse_env_keep_alive(s: &str) -> Option<KeepAlive> {
    let s = s.trim();
    let ns = match parse_go_duration(s) {
        Ok(ns) => ns,
        Err(_) => s.parse::<i64>().ok()?.checked_mul(1_000_000_000)?,
    };
    Some(if ns < 0 {
        KeepAlive::Forever
    } else {
        KeepAlive::For(Duration::from_nanos(ns.unsigned_abs()))
    })
}

fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        _ => "interface {}",
    }
}

/// Go's `strconv.Quote` for ASCII-ish text, as used in `time.ParseDuration` errors.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `time.ParseDuration`, returning nanoseconds or Go's error text.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let bytes = s.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_end = bytes
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len());
        let int_part = &s[..int_end];
        s = &s[int_end..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let fe = rest
                .as_bytes()
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(rest.len());
            frac_part = &rest[..fe];
            s = &rest[fe..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_end = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        s = &s[unit_end..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(orig)
                ));
            }
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut v = whole.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let digits = frac_part.len().min(30) as u32;
            let f: u128 = frac_part[..digits as usize]
                .parse()
                .map_err(|_| invalid())?;
            v += f * scale / 10u128.pow(digits);
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(invalid());
        }
    }
    let t = total as i128;
    Ok((if neg { -t } else { t }).clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_duration_forms() {
        assert_eq!(parse_go_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-1m"), Ok(-60_000_000_000));
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(
            parse_go_duration("300"),
            Err("time: missing unit in duration \"300\"".into())
        );
        assert_eq!(
            parse_go_duration("-1"),
            Err("time: missing unit in duration \"-1\"".into())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".into())
        );
    }

    #[test]
    fn keep_alive_json_forms() {
        let s = |ns: u64| Ok(Some(KeepAlive::For(Duration::from_nanos(ns))));
        assert_eq!(parse_keep_alive(Some(&json!(300))), s(300_000_000_000));
        assert_eq!(parse_keep_alive(Some(&json!(1.5))), s(1_500_000_000));
        assert_eq!(
            parse_keep_alive(Some(&json!(-1))),
            Ok(Some(KeepAlive::Forever))
        );
        assert_eq!(
            parse_keep_alive(Some(&json!("-1m"))),
            Ok(Some(KeepAlive::Forever))
        );
        assert_eq!(parse_keep_alive(Some(&json!(0))), s(0));
        assert_eq!(parse_keep_alive(Some(&json!("0"))), s(0));
        assert_eq!(parse_keep_alive(None), Ok(None));
        assert_eq!(parse_keep_alive(Some(&json!(null))), Ok(None));
        assert!(parse_keep_alive(Some(&json!(true))).is_err());
    }

    #[test]
    fn env_keep_alive_accepts_bare_seconds() {
        assert_eq!(
            parse_env_keep_alive("300"),
            Some(KeepAlive::For(Duration::from_secs(300)))
        );
        assert_eq!(parse_env_keep_alive("-1"), Some(KeepAlive::Forever));
        assert_eq!(parse_env_keep_alive("junk"), None);
    }
}
