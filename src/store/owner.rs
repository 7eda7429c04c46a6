//! Who owns a session: this process as the store names owners, and whether the process an
//! owner names still lives on this machine.

/// This process as the store names owners: its machine, its pid and its start time, so a
/// pid reused by another process is not taken for this one.
pub fn process_identity() -> String {
    static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let pid = std::process::id();
            format!(
                "{}/{pid}:{}",
                host_name(),
                start_time(pid).unwrap_or_default()
            )
        })
        .clone()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19).map(str::to_owned)
}

/// Whether the owner names a process alive on this machine, or one on another machine
/// (which only that machine can tell).
pub(super) fn process_alive(owner: &str) -> bool {
    // Owners written before hosts were recorded are this machine's.
    let (host, process) = owner.split_once('/').unwrap_or(("", owner));
    if !host.is_empty() && host != host_name() {
        return true;
    }
    let Some((pid, started)) = process.split_once(':') else {
        return false;
    };
    pid.parse::<u32>()
        .ok()
        .filter(|pid| !is_zombie(*pid))
        .and_then(start_time)
        .is_some_and(|t| t == started)
}

/// Whether a process has exited and only waits for its parent to collect it: it runs
/// nothing any more (a node killed under a supervisor that has not reaped it yet).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.get(stat.rfind(')')? + 2..)?.to_owned();
            after_name.chars().next()
        })
        .is_some_and(|state| state == 'Z')
}
