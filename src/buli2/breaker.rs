//! A circuit breaker for calls to BULI2: after `threshold` consecutive failures it opens and
//! refuses calls for `cooldown`; then it lets exactly one probe through (half-open). The
//! probe's success closes it; its failure opens it again for another cool-down.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            open_until: None,
            probing: false,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(_) if self.probing => BreakerState::HalfOpen,
            Some(until) if Instant::now() >= until => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// May a call go out now? While half-open, only the first caller (the probe) may.
    pub fn allow(&mut self) -> bool {
        match self.open_until {
            None => true,
            Some(until) if Instant::now() >= until && !self.probing => {
                self.probing = true;
                true
            }
            Some(_) => false,
        }
    }

    pub fn record_success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.probing = false;
    }

    pub fn record_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
        if self.probing || self.failures >= self.threshold {
            self.open_until = Some(Instant::now() + self.cooldown);
            self.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_probes_once_after_the_cooldown() {
        let cooldown = Duration::from_millis(40);
        let mut b = Breaker::new(5, cooldown);
        for _ in 0..4 {
            assert!(b.allow());
            b.record_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_success();
        for _ in 0..5 {
            assert!(b.allow());
            b.record_failure();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(), "open: calls are refused");
        tokio::time::advance(cooldown - Duration::from_millis(1)).await;
        assert!(!b.allow(), "still open just before the cool-down ends");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.allow(), "one probe after the cool-down");
        assert!(!b.allow(), "only one");
        b.record_failure();
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a failed probe opens it again"
        );
        tokio::time::advance(cooldown).await;
        assert!(b.allow());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
    }
}
