//! The service's clock. Workflow timestamps and durable timers read it, so tests can move time
//! forward (a week-long review SLA in a test that runs for seconds) without touching the
//! system clock. Production builds have no way to move it: the offset exists only with the
//! `test-hooks` feature.

/// Milliseconds since the Unix epoch, as stored everywhere.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    #[cfg(feature = "test-hooks")]
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    pub fn now_millis(&self) -> i64 {
        let now = crate::store::now_millis();
        #[cfg(feature = "test-hooks")]
        let now = now + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst);
        now
    }

    /// Test builds only: moves this clock (and every clone of it) forward.
    #[cfg(feature = "test-hooks")]
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}
