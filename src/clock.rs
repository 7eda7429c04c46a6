//! The wall clock as the cloud APIs count it: Unix time. One place, so every signature,
//! journal row and webhook check reads the same clock the same way.

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
