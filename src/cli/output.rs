//! What every command shares when it speaks: its exit codes and its JSON (a leaf the
//! commands and their dispatcher import).

use serde::Serialize;

/// Exit code for input refused before anything was sent (clap uses 2 for usage errors too).
pub const EXIT_INVALID: u8 = 2;
/// Exit code for a failure reported by, or on the way to, the cloud.
pub const EXIT_FAILED: u8 = 1;

/// `value` as pretty JSON on stdout.
pub(super) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
