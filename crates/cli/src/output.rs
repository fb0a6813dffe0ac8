//! Small formatting helpers shared by the commands' human output.

use std::sync::OnceLock;

use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Records the local UTC offset. Call it first thing in `main`: the `time` crate can only read
/// it safely while the process has a single thread, and later times are shown in it.
pub fn init_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

fn local(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(LOCAL_OFFSET.get().copied().unwrap_or(UtcOffset::UTC))
}

/// `HH:MM:SS` in local time.
pub fn local_hms(at: OffsetDateTime) -> String {
    local(at)
        .format(format_description!("[hour]:[minute]:[second]"))
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM` in local time.
pub fn local_date_time(at: OffsetDateTime) -> String {
    local(at)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
        .unwrap_or_default()
}

/// Bytes as Ollama's CLI prints them (decimal units: `3.4 GB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Binary GiB with one decimal, for VRAM figures (`3.4/12.0 GiB`).
pub fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 30) as f64)
}

/// `expires_at` the way `ollama ps` shows it: "Forever" beyond 20 years, else a relative time.
pub fn until(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let Some(at) = expires_at else {
        return "-".to_owned();
    };
    let left = at - now;
    if left.whole_days() > 365 * 20 {
        return "Forever".to_owned();
    }
    let secs = left.whole_seconds();
    match secs {
        s if s <= 0 => "Stopping...".to_owned(),
        s if s < 60 => format!("{s} seconds from now"),
        s if s < 3600 => format!("{} minutes from now", s / 60),
        s if s < 86400 => format!("{} hours from now", s / 3600),
        s => format!("{} days from now", s / 86400),
    }
}

/// A past duration in the coarsest whole unit: `42 s`, `5 min`, `3 h`, `2 days`.
pub fn age(d: time::Duration) -> String {
    match d.whole_seconds().max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_bytes(3_596_372_992), "3.6 GB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(gib(12 << 30), "12.0");
        let now = datetime!(2026-11-21 12:00 UTC);
        assert_eq!(until(Some(datetime!(2319-03-03 12:00 UTC)), now), "Forever");
        assert_eq!(
            until(Some(datetime!(2026-11-21 12:04:30 UTC)), now),
            "4 minutes from now"
        );
        assert_eq!(until(Some(now), now), "Stopping...");
        assert_eq!(until(None, now), "-");
        assert_eq!(age(time::Duration::seconds(42)), "42 s");
        assert_eq!(age(time::Duration::minutes(5)), "5 min");
        assert_eq!(age(time::Duration::days(3)), "3 days");
    }
}
