//! Test builds only (`test-hooks`): the failure points and fakes tests arm to drive FiLot into
//! its error paths — OCR runs that hang, crash, slow down or fail; store and blob writes that
//! fail at a chosen step; DNS answers that change between two lookups. Release builds never
//! compile this module, and it depends on nothing else in the crate.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{LazyLock, Mutex, atomic::AtomicBool},
    time::Duration,
};

/// Store failure points (the database).
#[derive(Debug, Default)]
pub struct StoreFaults {
    /// The next document insert fails just before its commit.
    pub fail_next_insert: AtomicBool,
}

/// Blob store failure points.
#[derive(Debug, Default)]
pub struct BlobFaults {
    pub fail_before_fsync: AtomicBool,
    pub fail_before_rename: AtomicBool,
}

/// Test builds only: faults the OCR backend injects on its N-th call (counted over the whole
/// node, from 1), so tests can hang, slow down, fail or crash a worker on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The model call never returns (until [`OcrFaults::release`]).
    Hang,
    /// The worker actor panics before reading.
    Panic,
    /// The model call takes this many more milliseconds.
    Slow(u64),
    /// The model call fails.
    Error,
}

#[derive(Debug, Default)]
pub struct OcrFaults {
    calls: std::sync::atomic::AtomicU64,
    plan: Mutex<HashMap<u64, Fault>>,
    per_worker: Mutex<HashMap<usize, Fault>>,
    released: std::sync::atomic::AtomicBool,
}

impl OcrFaults {
    /// Injects `fault` into run number `n` on this node (the first run is 1).
    pub fn on_call(&self, n: u64, fault: Fault) {
        self.plan.lock().unwrap().insert(n, fault);
    }

    /// Injects `fault` into every run of worker `index`.
    pub fn on_worker(&self, index: usize, fault: Fault) {
        self.per_worker.lock().unwrap().insert(index, fault);
    }

    /// Runs so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn next(&self, worker: usize) -> Option<Fault> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let planned = self.plan.lock().unwrap().remove(&n);
        planned.or_else(|| self.per_worker.lock().unwrap().get(&worker).copied())
    }

    /// Lets every hung call return (so a test's runtime can shut down).
    pub fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn hang(&self) {
        // Bounded so a forgotten release cannot hang a test run for ever, yet longer than
        // any test's OCR deadline: a hang that ends before the deadline (it was 60 s, against
        // the reaper test's 70 s) lets the run finish and nothing is reaped.
        for _ in 0..6_000 {
            if self.released.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Answers for names, as a DNS server under an attacker's control would give them.
static PINNED: LazyLock<Mutex<HashMap<String, IpAddr>>> = LazyLock::new(Default::default);

/// From now on `host` resolves to `ip`.
pub fn pin(host: &str, ip: IpAddr) {
    PINNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(host.to_ascii_lowercase(), ip);
}

pub(crate) fn pinned(host: &str) -> Option<IpAddr> {
    PINNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&host.trim_end_matches('.').to_ascii_lowercase())
        .copied()
}
