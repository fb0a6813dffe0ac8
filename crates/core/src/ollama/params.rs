//! The `parameters` text of `/api/show`: one option per line, the key padded to 30 columns,
//! then the value in Go `%#v` syntax. Array options (such as `stop`) repeat their key, and the
//! line order is random (Go map iteration), so lookups never depend on order.

use serde::{Deserialize, Serialize};

/// A value as Go's `%#v` prints a JSON-decoded option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl ParamValue {
    /// The value as an integer, if it is a whole number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(*n as i64),
            _ => None,
        }
    }
}

/// Parsed `parameters`: every (key, value) line, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    pub entries: Vec<(String, ParamValue)>,
}

impl Parameters {
    /// Parses the text. Lines that cannot be understood are skipped, because this text is
    /// informational and a new Go type must not make a whole diagnosis fail.
    pub fn parse(text: &str) -> Parameters {
        let entries = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let (key, rest) = line.split_once(char::is_whitespace)?;
                Some((key.to_owned(), parse_go_value(rest.trim())?))
            })
            .collect();
        Parameters { entries }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&ParamValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every value of `key` (array options repeat their key).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ParamValue> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// An integer option such as `num_ctx` or `num_gpu`.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(ParamValue::as_i64)
    }
}

fn parse_go_value(v: &str) -> Option<ParamValue> {
    match v {
        "" => None,
        "true" => Some(ParamValue::Bool(true)),
        "false" => Some(ParamValue::Bool(false)),
        _ if v.starts_with('"') => unquote_go(v).map(ParamValue::Text),
        // Go prints large floats as `1e+06`, which Rust's parser accepts as well.
        _ => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(ParamValue::Number),
    }
}

/// Undoes Go's `%#v`/`strconv.Quote` escaping of a string.
fn unquote_go(v: &str) -> Option<String> {
    let inner = v.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => out.push(char::from(hex(&mut chars, 2)? as u8)),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?)?),
            _ => return None,
        }
    }
    Some(out)
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> Option<u32> {
    let digits: String = chars.by_ref().take(n).collect();
    if digits.len() != n {
        return None;
    }
    u32::from_str_radix(&digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_show_parameters() {
        let text = "num_ctx                        131072\n\
                    stop                           \"<|start_header_id|>\"\n\
                    temperature                    0.7\n\
                    stop                           \"<|eot_id|>\"\n\
                    num_gpu                        0\n\
                    use_mmap                       false\n\
                    num_predict                    1e+06\n\
                    stop                           \"line\\nbreak \\\"q\\\" \\u00e9\"\n";
        let p = Parameters::parse(text);
        assert_eq!(p.get_i64("num_ctx"), Some(131072));
        assert_eq!(p.get_i64("num_gpu"), Some(0));
        assert_eq!(p.get_i64("num_predict"), Some(1_000_000));
        assert_eq!(p.get("temperature"), Some(&ParamValue::Number(0.7)));
        assert_eq!(p.get("use_mmap"), Some(&ParamValue::Bool(false)));
        let stops: Vec<_> = p.get_all("stop").collect();
        assert_eq!(stops.len(), 3);
        assert_eq!(stops[2], &ParamValue::Text("line\nbreak \"q\" é".into()));
        assert_eq!(p.get_i64("temperature"), None);
    }

    #[test]
    fn garbage_lines_are_skipped_not_fatal() {
        let p = Parameters::parse("\n   \nlonely\nbad \"unterminated\nnum_ctx 4096\nweird \\q\n");
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.get_i64("num_ctx"), Some(4096));
    }
}
