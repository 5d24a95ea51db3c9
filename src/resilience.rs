//! The mechanisms every part that retries, restarts, polls or waits out an outage shares,
//! written once so each is tuned and read in one place:
//!
//! - [`Backoff`]: a delay that doubles per failure up to a cap (restarts, delivery rounds,
//!   and, with jitter, the attempts inside one delivery round);
//! - [`RestartPolicy`] and its [`RestartBudget`]: how many failures a window tolerates before
//!   giving up (one policy per kind of actor, in the settings);
//! - [`Poller`]: an actor that works on a period, and once right at start, counting the
//!   rounds it has finished (so "a whole round has run since" is a question, not a guess);
//! - [`Outage`]: a dependency that went away, logged once when it goes and once when it is
//!   back, however often it is looked at meanwhile.
//!
//! Nothing here knows what it is used for.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ractor::ActorRef;
use tokio::time::Instant;

/// A delay that doubles per consecutive failure, from `first` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The delay after the `failures`-th failure in a row (1 → `first`).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max)
    }

    /// [`Backoff::after`] with "equal jitter": half of it fixed, the other half random, so
    /// callers that failed together do not retry together.
    pub fn jittered(&self, failures: u32) -> Duration {
        let full = self.after(failures);
        let half = full / 2;
        let random = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        );
        let spread = half.as_nanos() as u64;
        half + Duration::from_nanos(if spread == 0 {
            0
        } else {
            random % (spread + 1)
        })
    }
}

/// How many failures of one kind of actor a window tolerates (a setting per actor kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max: u32,
    pub window: Duration,
}

impl RestartPolicy {
    /// A fresh budget under this policy.
    pub fn budget(&self) -> RestartBudget {
        RestartBudget::new(self.max, self.window)
    }
}

/// Failures tolerated per window: more than `max` within `window` exhausts the budget.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: u32,
    window: Duration,
    failures: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            failures: VecDeque::new(),
        }
    }

    /// Counts a failure now; returns how many fall in the window, this one included.
    pub fn fail(&mut self) -> u32 {
        self.fail_at(Instant::now())
    }

    /// Failures within the window.
    pub fn recent(&mut self) -> u32 {
        self.recent_at(Instant::now())
    }

    /// More than `max` failures within the window.
    pub fn exhausted(&mut self) -> bool {
        self.recent() > self.max
    }

    fn fail_at(&mut self, now: Instant) -> u32 {
        self.failures.push_back(now);
        self.recent_at(now)
    }

    fn recent_at(&mut self, now: Instant) -> u32 {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.failures.pop_front();
        }
        self.failures.len() as u32
    }

    pub fn window(&self) -> Duration {
        self.window
    }
}

/// An actor's periodic work: how often it runs, and how many rounds it has finished. Clones
/// share the count, so whoever holds one (readiness, a test) sees the actor's progress.
#[derive(Debug, Clone)]
pub struct Poller {
    every: Duration,
    finished: Arc<AtomicU64>,
}

impl Poller {
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            finished: Arc::default(),
        }
    }

    /// Starts `myself` polling: `tick` every period, and one right away.
    pub fn start<M: ractor::Message>(&self, myself: &ActorRef<M>, tick: fn() -> M) {
        myself.send_interval(self.every, tick);
        let _ = myself.cast(tick());
    }

    /// One round begins; it counts as finished when the returned guard is dropped, however
    /// the round ends.
    pub fn round(&self) -> Round {
        Round(self.finished.clone())
    }

    /// Rounds finished so far.
    pub fn rounds(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

/// A poll round in progress (see [`Poller::round`]).
#[must_use = "a round is finished when this is dropped"]
pub struct Round(Arc<AtomicU64>);

impl Drop for Round {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The node's pollers, by job.
#[derive(Debug, Clone)]
pub struct Pollers {
    /// Documents waiting for OCR.
    pub ocr: Poller,
    /// OCR runs past their deadline or left by a dead node.
    pub reaper: Poller,
    /// BULI2 decisions due for delivery.
    pub outbox: Poller,
    /// Status webhooks due for delivery.
    pub webhooks: Poller,
    /// Verifications whose documents are ready, and due timers.
    pub workflow: Poller,
}

/// A dependency that can go away (the lease service, say), for whoever keeps looking at it.
/// Safe to share between tasks.
#[derive(Debug)]
pub struct Outage {
    /// What stops while it is away, for the log (`outbox`, `OCR`).
    what: &'static str,
    down: AtomicBool,
}

impl Outage {
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            down: AtomicBool::new(false),
        }
    }

    /// Records a look; logs only when the state changes. True when it did.
    pub fn record(&self, available: bool, why: &dyn std::fmt::Display) -> bool {
        let was_down = self.down.swap(!available, Ordering::SeqCst);
        match (was_down, available) {
            (false, false) => {
                tracing::error!(error = %why, "{} paused: no leases can be taken", self.what);
                true
            }
            (true, true) => {
                tracing::info!("{} resumed: leases can be taken again", self.what);
                true
            }
            _ => false,
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_keeps_at_least_half_and_at_most_the_whole_delay() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for failures in 1..8 {
            let full = b.after(failures);
            for _ in 0..50 {
                let d = b.jittered(failures);
                assert!(d >= full / 2 && d <= full, "{d:?} for {full:?}");
            }
        }
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO).jittered(3),
            Duration::ZERO
        );
    }

    #[test]
    fn a_round_counts_when_it_ends_and_clones_share_the_count() {
        let poller = Poller::every(Duration::from_secs(1));
        let seen = poller.clone();
        let round = poller.round();
        assert_eq!(seen.rounds(), 0, "not while it runs");
        drop(round);
        assert_eq!(seen.rounds(), 1);
        let early_return = || -> Option<()> {
            let _round = poller.round();
            None?;
            Some(())
        };
        assert_eq!(early_return(), None);
        assert_eq!(seen.rounds(), 2, "a round that returns early still ends");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let delays: Vec<u128> = (1..=8).map(|n| b.after(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.after(0), Duration::from_millis(100));
        assert_eq!(b.after(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_budget_forgets_failures_older_than_its_window() {
        let mut budget = RestartBudget::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(budget.fail_at(t0), 1);
        assert_eq!(budget.fail_at(t0 + Duration::from_secs(10)), 2);
        assert_eq!(
            budget.fail_at(t0 + Duration::from_secs(20)),
            3,
            "over max: 2"
        );
        assert_eq!(budget.recent_at(t0 + Duration::from_secs(65)), 2);
        assert_eq!(budget.recent_at(t0 + Duration::from_secs(81)), 0);
        assert!(!budget.exhausted());
    }

    #[test]
    fn an_outage_is_reported_once_each_way() {
        let o = Outage::new("test");
        assert!(!o.record(true, &"fine"), "nothing to say while it works");
        assert!(o.record(false, &"down"));
        assert!(!o.record(false, &"still down"));
        assert!(o.is_down());
        assert!(o.record(true, &"back"));
        assert!(!o.is_down());
    }
}
