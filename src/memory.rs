//! How the process hands memory back to the system between sessions.
//!
//! Most of a media node's memory is GStreamer's (C) buffers: raw pictures, encoder and
//! decoder state, allocated with glibc's `malloc` from many streaming threads. glibc serves
//! a large block from `mmap` at first, but after the first one is freed it raises its mmap
//! threshold to that size (up to 32 MB), so later frames come from the heaps of its per-thread
//! arenas, where freed memory stays mapped: a node's resident size then follows its busiest
//! moment and creeps up with churn (measured: 360p live sessions, 181 → 279 MB idle over 280
//! sessions; with the threshold fixed, 78 → 93 MB). So the threshold is fixed at start, and
//! each ended session gives free pages back.

/// Blocks from this size up are mapped on their own and unmapped when freed: a 360p
/// picture is 340 KB, an audio chunk far below.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold (setting it turns its dynamic raising off). Call early.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt takes two integers and changes allocator parameters only; any value is
    // accepted or refused by the return code, which is advisory here.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives the free pages of every arena back to the system: after a session ended, what it
/// used is not kept resident for the next.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes an integer and only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
