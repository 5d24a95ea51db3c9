//! The membership actor: one per node, in the [`MEMBERS`] group. On every tick it re-dials
//! configured peers that have no session (ractor_cluster never re-dials), introduces itself
//! to members it has not met (refusing, and disconnecting, a node of another protocol
//! version), pings the others with a deadline (ractor_cluster does not notice a half-open
//! link), and declares down the peers whose answers stopped. A peer whose session closes is
//! down at once.

use std::{collections::HashMap, time::Duration};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent, pg};
use ractor_cluster::{NodeServerMessage, node::NodeServerSessionInformation};
use tokio::time::Instant;

use super::{
    PeerAddr,
    roster::{Change, Roster},
    wire::{Frame, MEMBERS, MemberMsg, WireError},
};
use crate::{resilience::Backoff, telemetry::metrics::names};

pub struct MemberArgs {
    pub server: ActorRef<NodeServerMessage>,
    pub roster: Roster,
    pub peers: Vec<PeerAddr>,
    pub heartbeat: Duration,
    pub deadline: Duration,
    pub redial: Backoff,
    /// Dial over TLS with this, when `cluster.tls` is set.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

/// Dialling one configured peer.
#[derive(Default)]
struct Dial {
    failures: u32,
    next: Option<Instant>,
}

pub struct MemberState {
    args: MemberArgs,
    dials: HashMap<String, Dial>,
}

pub struct Membership;

impl Actor for Membership {
    type Msg = MemberMsg;
    type State = MemberState;
    type Arguments = MemberArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MemberMsg>,
        args: MemberArgs,
    ) -> Result<MemberState, ActorProcessingErr> {
        pg::join(MEMBERS.to_string(), vec![myself.get_cell()]);
        pg::monitor(MEMBERS.to_string(), myself.get_cell());
        myself.send_interval(args.heartbeat, || MemberMsg::Tick);
        let _ = myself.cast(MemberMsg::Tick);
        Ok(MemberState {
            args,
            dials: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<MemberMsg>,
        msg: MemberMsg,
        state: &mut MemberState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MemberMsg::Hello(frame, reply) => {
                if let Err(e) = &frame.0 {
                    // The caller finds out from our answer and refuses us; say so here too.
                    tracing::error!(error = %e, "a node introduced itself in a form this node cannot read");
                }
                let _ = reply.send(Frame::new((*state.args.roster.me).clone()));
            }
            MemberMsg::Ping(_, reply) => {
                let _ = reply.send(Frame::new(state.args.roster.load.pong()));
            }
            MemberMsg::Tick => state.tick().await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<MemberMsg>,
        event: SupervisionEvent,
        state: &mut MemberState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = event {
            match change {
                pg::GroupChangeMessage::Join(_, _, cells) => {
                    let sessions = state.sessions().await;
                    for cell in cells.into_iter().filter(|c| !c.get_id().is_local()) {
                        state.introduce(cell, &sessions);
                    }
                }
                pg::GroupChangeMessage::Leave(_, _, cells) => {
                    for cell in cells.into_iter().filter(|c| !c.get_id().is_local()) {
                        if let Some(name) = state.args.roster.session_closed(cell.get_id().node()) {
                            tracing::warn!(peer = %name, "cluster node left (its session closed)");
                        }
                    }
                    state.gauge();
                }
            }
        }
        Ok(())
    }
}

impl MemberState {
    async fn sessions(&self) -> HashMap<u64, NodeServerSessionInformation> {
        match ractor::call_t!(self.args.server, NodeServerMessage::GetSessions, 2_000) {
            Ok(sessions) => sessions,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot list sessions");
                HashMap::new()
            }
        }
    }

    async fn tick(&mut self) {
        let sessions = self.sessions().await;
        self.redial(&sessions);
        for cell in pg::get_members(&MEMBERS.to_string()) {
            if cell.get_id().is_local() {
                continue;
            }
            if self.args.roster.knows(cell.get_id().node()) {
                self.ping(cell);
            } else {
                self.introduce(cell, &sessions);
            }
        }
        for name in self.args.roster.sweep(self.args.deadline) {
            tracing::warn!(peer = %name, deadline = ?self.args.deadline, "cluster node declared down: no heartbeat answer");
        }
        self.gauge();
    }

    fn gauge(&self) {
        let (up, down) = self.args.roster.counts();
        metrics::gauge!(names::CLUSTER_NODES, "state" => "up").set(up as f64);
        metrics::gauge!(names::CLUSTER_NODES, "state" => "down").set(down as f64);
    }

    /// Dials each configured peer that has no session, backing off while it stays away.
    fn redial(&mut self, sessions: &HashMap<u64, NodeServerSessionInformation>) {
        let connected: Vec<&str> = sessions
            .values()
            .filter_map(|s| s.peer_name.as_ref().map(|n| n.name.as_str()))
            .collect();
        for peer in &self.args.peers {
            let dial = self.dials.entry(peer.name.clone()).or_default();
            if connected.contains(&peer.name.as_str()) {
                if self.args.roster.is_up_by_name(&peer.name) {
                    *dial = Dial::default();
                }
                continue;
            }
            if dial.next.is_some_and(|next| Instant::now() < next) {
                continue;
            }
            // Reset only once the peer is up: a refused cookie or version also backs off.
            dial.failures += 1;
            dial.next = Some(Instant::now() + self.args.redial.jittered(dial.failures));
            // Dialled in the background: the tick (and the pings this actor answers) never
            // waits on a peer that does not answer.
            let (server, tls, peer) = (
                self.args.server.clone(),
                self.args.tls.clone(),
                peer.clone(),
            );
            let attempts = dial.failures;
            tokio::spawn(async move {
                let address = peer.address.as_str();
                let connect = async {
                    match &tls {
                        None => ractor_cluster::client_connect(&server, address).await,
                        Some(tls) => {
                            let Some(name) = super::tls::ClusterTls::server_name(address) else {
                                return Err(ractor_cluster::ClientConnectErr::Encryption(
                                    std::io::Error::other("no host name in the peer's address"),
                                ));
                            };
                            ractor_cluster::client_connect_enc(&server, address, tls.clone(), name)
                                .await
                        }
                    }
                };
                match tokio::time::timeout(Duration::from_secs(2), connect).await {
                    Ok(Ok(())) => {
                        tracing::info!(peer = %peer.name, address = %peer.address, "cluster: dialled peer")
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer.name, error = %e, attempts, "cluster: peer unreachable; will re-dial")
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer.name, attempts, "cluster: dial timed out; will re-dial")
                    }
                }
            });
        }
    }

    /// Exchanges introductions with a member not met yet, in the background.
    fn introduce(
        &self,
        cell: ractor::ActorCell,
        sessions: &HashMap<u64, NodeServerSessionInformation>,
    ) {
        let node_id = cell.get_id().node();
        let session = sessions.get(&node_id).cloned();
        let roster = self.args.roster.clone();
        let me = (*roster.me).clone();
        let deadline = self.args.deadline;
        let member: ActorRef<MemberMsg> = cell.into();
        tokio::spawn(async move {
            let answer = member
                .call(
                    |port| MemberMsg::Hello(Frame::new(me), port),
                    Some(deadline),
                )
                .await;
            // Where it listens (what it says), not the port it dialled in from.
            let address = session
                .as_ref()
                .map(|s| {
                    s.peer_name
                        .as_ref()
                        .map_or_else(|| s.peer_addr.clone(), |n| n.connection_string.clone())
                })
                .unwrap_or_default();
            match answer {
                Ok(ractor::rpc::CallResult::Success(Frame(Ok(hello)))) => {
                    let name = hello.name.clone();
                    let roles = hello.roles.join(",");
                    match roster.introduced(node_id, hello, address) {
                        Change::Joined => {
                            tracing::info!(peer = %name, roles, "cluster node joined")
                        }
                        Change::Rejoined => {
                            tracing::info!(peer = %name, roles, "cluster node rejoined")
                        }
                        _ => {}
                    }
                }
                Ok(ractor::rpc::CallResult::Success(Frame(Err(e)))) => {
                    refuse(session, &address, e);
                }
                Ok(_) | Err(_) => {
                    tracing::debug!(%address, "cluster: no introduction yet; will retry")
                }
            }
        });
    }

    /// Pings an introduced member, in the background.
    fn ping(&self, cell: ractor::ActorCell) {
        let node_id = cell.get_id().node();
        let roster = self.args.roster.clone();
        let deadline = self.args.deadline;
        let member: ActorRef<MemberMsg> = cell.into();
        tokio::spawn(async move {
            if let Ok(ractor::rpc::CallResult::Success(Frame(Ok(pong)))) = member
                .call(|port| MemberMsg::Ping(Frame::new(()), port), Some(deadline))
                .await
                && let Some((name, Change::Rejoined)) = roster.answered(node_id, pong)
            {
                tracing::info!(peer = %name, "cluster node answers again; back up");
            }
        });
    }
}

/// A peer whose introduction cannot be read (another protocol version) is disconnected.
fn refuse(session: Option<NodeServerSessionInformation>, address: &str, why: WireError) {
    tracing::error!(%address, error = %why, "refusing cluster node: it was built with other cluster messages; run the same FiLot build on every node");
    metrics::counter!(names::CLUSTER_REFUSED_COUNT).increment(1);
    if let Some(s) = session {
        s.actor.stop(Some("cluster protocol mismatch".into()));
    }
}
