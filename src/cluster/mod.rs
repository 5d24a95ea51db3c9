//! The cluster: nodes join over ractor_cluster from their settings (`node.*`, `cluster.*`).
//! This module owns the node server (listener, cookie, frame limit), the membership actor
//! that re-dials peers, introduces nodes, checks their protocol version and declares the
//! silent ones down, the roster everyone reads, and the wire format of every cluster
//! message. What work goes where is decided by the actors (the OCR dispatcher reads the
//! roster and the `ocr:*` process groups); durability stays in the database.

pub mod membership;
pub mod roster;
pub mod tls;
pub mod wire;

use std::{net::SocketAddr, time::Duration};

use ractor::{Actor, ActorRef};
use ractor_cluster::{NodeServer, NodeServerMessage, node::NodeConnectionMode};

pub use crate::config::PeerAddr;
use crate::{config::Settings, resilience::Backoff};
pub use roster::{Load, Peer, PeerState, Roster};
use wire::{Hello, MemberMsg};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.listen: `{0}` is not host:port")]
    Listen(String),
    #[error("cluster.cookie: required to join a cluster")]
    Cookie,
    #[error("cluster node server did not start: {0}")]
    Start(String),
    #[error("cluster TLS: {0}")]
    Tls(String),
}

/// A running cluster membership.
pub struct Cluster {
    pub roster: Roster,
    server: ActorRef<NodeServerMessage>,
    member: ActorRef<MemberMsg>,
}

impl Cluster {
    /// Starts the node server on `cluster.listen` and the membership actor, when the
    /// settings ask for a cluster (`cluster.listen` set); `None` for a single node.
    /// `capacity` is how many cards this node's OCR pool reads at once.
    pub async fn start(settings: &Settings, capacity: u32) -> Result<Option<Self>, ClusterError> {
        let c = &settings.cluster;
        if c.listen.is_empty() {
            return Ok(None);
        }
        let listen: SocketAddr = c
            .listen
            .parse()
            .map_err(|_| ClusterError::Listen(c.listen.clone()))?;
        let cookie = c.cookie.as_ref().ok_or(ClusterError::Cookie)?;
        let (node_name, host) = settings
            .node
            .name
            .split_once('@')
            .unwrap_or((settings.node.name.as_str(), "localhost"));
        // Only devices it serves other nodes with (an `api` node's own are its own).
        let me = Hello {
            name: settings.node.name.clone(),
            roles: settings.node.roles.clone(),
            devices: if capacity > 0 {
                settings.ocr.devices.clone()
            } else {
                Vec::new()
            },
            capacity,
        };
        let tls = if c.tls.cert.is_empty() {
            None
        } else {
            Some(tls::ClusterTls::load(&c.tls.cert, &c.tls.key, &c.tls.ca)?)
        };
        let server = NodeServer::new(
            listen.port(),
            cookie.expose().to_string(),
            node_name.to_string(),
            host.to_string(),
            tls.as_ref()
                .map(|t| ractor_cluster::IncomingEncryptionMode::Tls(t.acceptor.clone())),
            // Only the configured peers; no introductions through third nodes.
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(listen.ip())
        .with_max_inbound_frame_size(c.max_frame_bytes);
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| ClusterError::Start(e.to_string()))?;
        let roster = Roster::new(me, listen.to_string());
        let args = membership::MemberArgs {
            server: server.clone(),
            roster: roster.clone(),
            peers: c.peers.iter().filter_map(|p| PeerAddr::parse(p)).collect(),
            heartbeat: c.heartbeat_interval,
            deadline: c.heartbeat_deadline,
            redial: Backoff::new(Duration::from_millis(500), c.redial_max),
            tls: tls.map(|t| t.connector),
        };
        let (member, _) = Actor::spawn(None, membership::Membership, args)
            .await
            .map_err(|e| ClusterError::Start(e.to_string()))?;
        tracing::info!(node = %settings.node.name, listen = %listen, peers = c.peers.len(), protocol = wire::protocol(), tls = !c.tls.cert.is_empty(), "cluster node started");
        Ok(Some(Self {
            roster,
            server,
            member,
        }))
    }

    /// Leaves the cluster: the membership actor and the node server stop (peers see the
    /// sessions close).
    pub fn stop(&self) {
        self.member.stop(Some("shutdown".into()));
        self.server.stop(Some("shutdown".into()));
    }
}
