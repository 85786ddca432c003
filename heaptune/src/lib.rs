//! The node's heap under glibc's malloc (issue 13).
//!
//! glibc keeps what a program frees for its next allocations rather than giving it
//! back to the system, and two of its defaults make that costly for the node:
//!
//! - up to 8 arenas a core, one taken by each thread that allocates while another
//!   holds its arena. The async runtime's workers and its blocking threads (the
//!   history's flushes, the Modbus and MQTT tasks) spread the node's allocations over
//!   a dozen arenas, each keeping its own free memory;
//! - a threshold for serving an allocation with its own `mmap` that moves up to the
//!   size of the largest block freed (up to 32 MiB): once the history's flush has
//!   freed a few MiB of Arrow and Parquet buffers, buffers of that size come from the
//!   heap from then on, and what they leave behind when freed stays in it.
//!
//! [`tune`], called first thing in `main`, caps the arenas at 2 and fixes the
//! threshold at 128 KiB (glibc's starting value); [`release_free_memory`], called
//! where large transient allocations end (after the history's flush and
//! compaction), hands the free pages inside the heap back to the system
//! (`malloc_trim`). BENCHMARKS.md, "Memory and CPU over time: the soak", has what
//! each saves.
//!
//! A setting given in the environment (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
//! `GLIBC_TUNABLES`) wins over the node's. To measure the difference,
//! `COMMUNALIA_MALLOC=glibc` leaves glibc as it is and never trims, and
//! `COMMUNALIA_MALLOC=notrim` applies the settings but never trims. Elsewhere than
//! on glibc both functions do nothing.

use std::sync::atomic::{AtomicBool, Ordering};

/// Most arenas glibc may create (its default: 8 a core).
pub const ARENA_MAX: i32 = 2;

/// Allocations from this size on get their own `mmap`, given back when freed
/// (glibc starts at the same 128 KiB but raises it as large blocks are freed).
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Whether [`release_free_memory`] trims: set by [`tune`].
static TRIM: AtomicBool = AtomicBool::new(false);

/// What [`tune`] did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Settings applied, as `NAME=VALUE`.
    pub applied: Vec<String>,
    /// Settings left to the environment, which gave its own.
    pub from_env: Vec<&'static str>,
    /// `COMMUNALIA_MALLOC=glibc`, or not glibc: nothing applied, no trimming.
    pub off: bool,
    /// Whether [`release_free_memory`] trims (not with `COMMUNALIA_MALLOC=notrim`).
    pub trim: bool,
}

/// Applies the node's malloc settings. Call it at the very start of `main`, before
/// any thread is started (glibc reads some of them when it creates an arena).
pub fn tune() -> Tuning {
    let mut tuning = Tuning {
        applied: Vec::new(),
        from_env: Vec::new(),
        off: true,
        trim: false,
    };
    let choice = std::env::var_os("COMMUNALIA_MALLOC");
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || choice.as_ref().is_some_and(|v| v == "glibc")
    {
        return tuning;
    }
    tuning.off = false;
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    for (env, tunable, param, value) in [
        ("MALLOC_ARENA_MAX", "arena_max", Param::ArenaMax, ARENA_MAX),
        (
            "MALLOC_MMAP_THRESHOLD_",
            "mmap_threshold",
            Param::MmapThreshold,
            MMAP_THRESHOLD,
        ),
    ] {
        if std::env::var_os(env).is_some() || tunables.contains(tunable) {
            tuning.from_env.push(env);
        } else if set(param, value) {
            tuning.applied.push(format!("{env}={value}"));
        }
    }
    tuning.trim = choice.is_none_or(|v| v != "notrim");
    TRIM.store(tuning.trim, Ordering::Relaxed);
    tuning
}

/// Gives the free memory inside the heap back to the system, after [`tune`] (a
/// no-op otherwise). It walks every arena: a few milliseconds for the node's heap,
/// meant for after a large transient allocation (a flush, a compaction), not for
/// every message.
pub fn release_free_memory() {
    if TRIM.load(Ordering::Relaxed) {
        trim();
    }
}

#[derive(Clone, Copy)]
enum Param {
    ArenaMax,
    MmapThreshold,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set(param: Param, value: i32) -> bool {
    let param = match param {
        Param::ArenaMax => libc::M_ARENA_MAX,
        Param::MmapThreshold => libc::M_MMAP_THRESHOLD,
    };
    // SAFETY: `mallopt` takes plain integers and only changes malloc's parameters,
    // under malloc's own lock; it returns 1 on success.
    #[allow(unsafe_code)]
    let done = unsafe { libc::mallopt(param, value) };
    done == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set(_: Param, _: i32) -> bool {
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: `malloc_trim` takes a plain integer (the memory to keep at the top of
    // the main heap) and works under each arena's own lock.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_applies_and_trimming_runs() {
        let tuning = tune();
        if cfg!(all(target_os = "linux", target_env = "gnu"))
            && std::env::var_os("COMMUNALIA_MALLOC").is_none()
        {
            assert!(!tuning.off);
            assert_eq!(tuning.applied.len() + tuning.from_env.len(), 2);
        }
        // A large block, freed, then the heap trimmed: nothing to check but that it
        // returns.
        drop(vec![1u8; 4 << 20]);
        release_free_memory();
    }
}
