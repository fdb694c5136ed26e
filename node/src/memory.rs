//! How the C allocator is set up for a daemon that runs for months on small machines.
//!
//! glibc's malloc gives each thread that allocates its own arena (up to eight per core) and
//! raises its threshold for serving large blocks with `mmap` every time such a block is freed,
//! after which big transient buffers (sled's recovery reads segments into buffers of half a
//! megabyte) land in the arenas and fragment them. Memory freed inside an arena mostly stays
//! resident. In a 50-node lab the same build measured, per node at idle, 11.4 MB anonymous
//! memory on a home and 47–54 MB on a hub with glibc's defaults, against 9.1 and 31 MB with
//! the settings below (docs/control-plane.md). mimalloc measured far worse (52 MB
//! anonymous on a lone node against 1.9).

/// At most this many arenas, for all threads together.
const ARENA_MAX: i32 = 2;
/// Blocks this large or larger are mapped on their own and returned to the system when freed;
/// fixed, so it does not creep up.
const MMAP_THRESHOLD: i32 = 64 * 1024;
/// Free memory at the top of an arena beyond this is returned to the system.
const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Applies the settings above; call first thing in `main`, before threads start (and so before
/// logging is set up). Returns the names of the settings the C library refused, for `main` to
/// log. A no-op where the C library is not glibc.
pub fn tune_allocator() -> Vec<&'static str> {
    let mut refused = Vec::new();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (name, param, value) in [
        ("M_ARENA_MAX", libc::M_ARENA_MAX, ARENA_MAX),
        ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ] {
        // SAFETY: mallopt only reads its two integer arguments and changes malloc's own
        // parameters; it is safe to call at any time, from any thread.
        #[allow(unsafe_code)]
        let applied = unsafe { libc::mallopt(param, value) };
        if applied != 1 {
            refused.push(name);
        }
    }
    refused
}
