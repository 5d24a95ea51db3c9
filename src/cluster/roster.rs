//! The roster: what this node knows of its peers (their introductions, whether they are up,
//! when they last answered, how busy they said they were), shared by the membership actor
//! that keeps it, the OCR dispatcher that reads it, and the admin view.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use super::wire::{Hello, Pong};

/// Up or down, as this node sees a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Up,
    Down,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// One peer, by name.
#[derive(Debug, Clone)]
pub struct Peer {
    pub hello: Hello,
    /// The cluster session it is on now (`None` once the session closed).
    pub node_id: Option<u64>,
    pub address: String,
    pub state: PeerState,
    pub last_seen: SystemTime,
    seen_at: Instant,
    pub in_flight: u32,
    pub processed: u64,
}

/// This node's own work counters (what its pongs report).
#[derive(Debug, Default)]
pub struct Load {
    pub in_flight: AtomicU32,
    pub processed: AtomicU64,
}

impl Load {
    pub fn pong(&self) -> Pong {
        Pong {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            processed: self.processed.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    peers: BTreeMap<String, Peer>,
}

/// Shared view of the cluster; cheap to clone.
#[derive(Debug, Clone)]
pub struct Roster {
    pub me: Arc<Hello>,
    /// This node's cluster address (`host:port`), empty without a listener.
    pub address: String,
    pub load: Arc<Load>,
    inner: Arc<RwLock<Inner>>,
}

/// A state change worth a log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Joined,
    Rejoined,
    Down,
    Same,
}

impl Roster {
    pub fn new(me: Hello, address: String) -> Self {
        Self {
            me: Arc::new(me),
            address,
            load: Arc::default(),
            inner: Arc::default(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A peer introduced itself on session `node_id`.
    pub fn introduced(&self, node_id: u64, hello: Hello, address: String) -> Change {
        let mut inner = self.write();
        let now = (SystemTime::now(), Instant::now());
        let name = hello.name.clone();
        let change = match inner.peers.get(&name) {
            None => Change::Joined,
            Some(p) if p.state == PeerState::Down || p.node_id != Some(node_id) => Change::Rejoined,
            Some(_) => Change::Same,
        };
        inner.peers.insert(
            name,
            Peer {
                hello,
                node_id: Some(node_id),
                address,
                state: PeerState::Up,
                last_seen: now.0,
                seen_at: now.1,
                in_flight: 0,
                processed: 0,
            },
        );
        change
    }

    /// Is session `node_id` an introduced peer?
    pub fn knows(&self, node_id: u64) -> bool {
        self.read()
            .peers
            .values()
            .any(|p| p.node_id == Some(node_id))
    }

    /// A heartbeat answered: the peer is up (again).
    pub fn answered(&self, node_id: u64, pong: Pong) -> Option<(String, Change)> {
        let mut inner = self.write();
        let peer = inner
            .peers
            .values_mut()
            .find(|p| p.node_id == Some(node_id))?;
        let change = if peer.state == PeerState::Down {
            Change::Rejoined
        } else {
            Change::Same
        };
        peer.state = PeerState::Up;
        peer.last_seen = SystemTime::now();
        peer.seen_at = Instant::now();
        peer.in_flight = pong.in_flight;
        peer.processed = pong.processed;
        Some((peer.hello.name.clone(), change))
    }

    /// Peers silent for longer than `deadline` are declared down; returns their names.
    pub fn sweep(&self, deadline: Duration) -> Vec<String> {
        let mut inner = self.write();
        let mut down = Vec::new();
        for peer in inner.peers.values_mut() {
            if peer.state == PeerState::Up && peer.seen_at.elapsed() > deadline {
                peer.state = PeerState::Down;
                down.push(peer.hello.name.clone());
            }
        }
        down
    }

    /// Session `node_id` closed: its peer is down at once.
    pub fn session_closed(&self, node_id: u64) -> Option<String> {
        let mut inner = self.write();
        let peer = inner
            .peers
            .values_mut()
            .find(|p| p.node_id == Some(node_id))?;
        peer.node_id = None;
        let was_up = peer.state == PeerState::Up;
        peer.state = PeerState::Down;
        was_up.then(|| peer.hello.name.clone())
    }

    /// Is the peer on session `node_id` up, and what did it say about itself?
    pub fn up(&self, node_id: u64) -> Option<Hello> {
        self.read()
            .peers
            .values()
            .find(|p| p.node_id == Some(node_id) && p.state == PeerState::Up)
            .map(|p| p.hello.clone())
    }

    /// Every peer, by name.
    pub fn peers(&self) -> Vec<Peer> {
        self.read().peers.values().cloned().collect()
    }

    /// Peers up and down (the `filot.cluster.nodes` gauge), this node counted as up.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.read();
        let up = inner
            .peers
            .values()
            .filter(|p| p.state == PeerState::Up)
            .count();
        (up + 1, inner.peers.len() - up)
    }

    /// Is a peer called `name` up?
    pub fn is_up_by_name(&self, name: &str) -> bool {
        self.read()
            .peers
            .get(name)
            .is_some_and(|p| p.state == PeerState::Up && p.node_id.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &str) -> Hello {
        Hello {
            name: name.into(),
            roles: vec!["ocr".into()],
            devices: vec!["cpu".into()],
            capacity: 1,
        }
    }

    #[test]
    fn a_peer_goes_down_when_silent_or_disconnected_and_comes_back_when_it_answers() {
        let roster = Roster::new(hello("api@h"), String::new());
        assert_eq!(
            roster.introduced(7, hello("ocr1@h"), "h:1".into()),
            Change::Joined
        );
        assert!(roster.up(7).is_some());
        assert!(roster.sweep(Duration::from_secs(60)).is_empty());
        assert_eq!(roster.sweep(Duration::ZERO), vec!["ocr1@h".to_string()]);
        assert!(roster.up(7).is_none(), "down after its deadline");
        let pong = Pong {
            in_flight: 1,
            processed: 3,
        };
        assert_eq!(
            roster.answered(7, pong),
            Some(("ocr1@h".into(), Change::Rejoined))
        );
        assert_eq!(roster.peers()[0].processed, 3);
        assert_eq!(roster.session_closed(7), Some("ocr1@h".into()));
        assert!(roster.up(7).is_none());
        assert_eq!(roster.counts(), (1, 1));
        assert_eq!(
            roster.introduced(9, hello("ocr1@h"), "h:1".into()),
            Change::Rejoined
        );
        assert!(roster.is_up_by_name("ocr1@h"));
    }
}
