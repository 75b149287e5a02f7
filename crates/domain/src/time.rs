//! Times as the API writes them: RFC 3339, UTC, with milliseconds (`2026-11-25T10:30:00.000Z`).

use chrono::{DateTime, SecondsFormat, Utc};

/// Serialises a time as [`format_time`] writes it (for `#[serde(serialize_with)]`).
pub fn serialize_time<S: serde::Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}

/// Serialises an optional time as [`format_time`] writes it, or `null`.
pub fn serialize_optional_time<S: serde::Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&format_time(*time)),
        None => serializer.serialize_none(),
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-25T10:30:00.000Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
