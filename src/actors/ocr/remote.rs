//! Another node's OCR pool, as the dispatcher on an `api` node sees it: a member of an
//! `ocr:*` process group that reads a card's bytes and answers with the page. A call that
//! fails because the member went away, or does not answer in time, is a lost node (the
//! document is requeued at once); the answer is only ever written by the worker that asked,
//! with its own lease's fencing token.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use ractor::{ActorCell, ActorId, ActorRef, pg, rpc::CallResult};

use super::{
    Abandon, OcrPoolMsg, OcrWorkerMsg,
    worker::{PageRead, Reader},
};
use crate::{
    cluster::{
        Roster,
        wire::{self, Frame, OcrServerMsg, ReadReply, ReadRequest},
    },
    kyc::DocumentId,
    store::leases::Lease,
    telemetry::metrics::names,
};

/// One remote OCR pool.
#[derive(Clone)]
pub struct RemoteOcr {
    pub server: ActorRef<OcrServerMsg>,
    /// Its node's name (`name@host`).
    pub node: String,
}

/// The reason codes a remote pool may answer; anything else reads as `ocr_unreadable`
/// (a peer's answer never becomes a new metrics label).
const UNREADABLE: [&str; 2] = ["ocr_unreadable", "ocr_crashed"];

impl RemoteOcr {
    /// Sends the card and waits up to `deadline` for its page.
    pub(super) async fn read(&self, request: ReadRequest, deadline: Duration) -> PageRead {
        let started = Instant::now();
        let answer = self
            .server
            .call(
                |port| OcrServerMsg::Read(Frame::new(request), port),
                Some(deadline),
            )
            .await;
        match answer {
            Ok(CallResult::Success(Frame(Ok(reply)))) => {
                metrics::histogram!(names::CLUSTER_DISPATCH_LATENCY_MS)
                    .record(started.elapsed().as_secs_f64() * 1e3);
                match reply {
                    ReadReply::Page(page) => PageRead::Page(Box::new((*page).into())),
                    ReadReply::Unreadable(code) => PageRead::Unreadable(
                        UNREADABLE
                            .into_iter()
                            .find(|c| *c == code)
                            .unwrap_or("ocr_unreadable"),
                    ),
                    ReadReply::EngineError(e) => PageRead::EngineError(e),
                }
            }
            Ok(CallResult::Success(Frame(Err(e)))) => {
                PageRead::EngineError(format!("answer from {} unreadable: {e}", self.node))
            }
            Ok(CallResult::Timeout) => {
                PageRead::NodeLost(format!("{} did not answer within {deadline:?}", self.node))
            }
            Ok(CallResult::SenderError) | Err(_) => {
                PageRead::NodeLost(format!("{} went away during the read", self.node))
            }
        }
    }
}

/// A worker slot on a remote pool: one per card the member reads at once.
pub(super) struct RemoteSlot {
    pub member: ActorId,
    pub ocr: RemoteOcr,
    pub worker: Option<ActorRef<OcrWorkerMsg>>,
    pub run: Option<(DocumentId, Lease)>,
}

/// The dispatcher's slots on other nodes' pools, indexed after the local workers'.
#[derive(Default)]
pub(super) struct RemoteSlots {
    pub slots: BTreeMap<usize, RemoteSlot>,
    next: usize,
}

/// A remote pool worth sending cards to: its node is up and speaks this protocol.
pub(super) struct Wanted {
    cell: ActorCell,
    node: String,
    capacity: u32,
}

/// A remote member's local stand-in stops the moment its session closes, before the
/// process group or the roster have heard.
fn running(cell: &ActorCell) -> bool {
    cell.get_status() == ractor::ActorStatus::Running
}

/// The remote OCR pools of every device kind whose nodes are up now.
pub(super) fn wanted(roster: &Roster) -> Vec<Wanted> {
    ["cuda", "cpu"]
        .into_iter()
        .flat_map(|kind| pg::get_members(&wire::ocr_group(kind)))
        .filter(|cell| !cell.get_id().is_local() && running(cell))
        .filter_map(|cell| {
            let hello = roster.up(cell.get_id().node())?;
            Some(Wanted {
                cell,
                node: hello.name,
                capacity: hello.capacity.max(1),
            })
        })
        .collect()
}

impl RemoteSlots {
    /// Removes the slots of members no longer wanted (gone, or their node down) and returns
    /// them, for the pool to stop their workers and requeue their runs.
    pub fn prune(&mut self, wanted: &[Wanted]) -> Vec<(usize, RemoteSlot)> {
        let keep: Vec<ActorId> = wanted.iter().map(|w| w.cell.get_id()).collect();
        let gone: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| !keep.contains(&s.member) || !running(&s.ocr.server.get_cell()))
            .map(|(i, _)| *i)
            .collect();
        gone.into_iter()
            .filter_map(|i| self.slots.remove(&i).map(|s| (i, s)))
            .collect()
    }

    /// Adds slots until each wanted member has as many as it reads at once; returns the new
    /// slots' indices (from `first` up, never reused) with the pool each reads on.
    pub fn grow(&mut self, wanted: &[Wanted], first: usize) -> Vec<(usize, RemoteOcr)> {
        self.next = self.next.max(first);
        let mut added = Vec::new();
        for w in wanted {
            let id = w.cell.get_id();
            let have = self.slots.values().filter(|s| s.member == id).count() as u32;
            for _ in have..w.capacity {
                let index = self.next;
                self.next += 1;
                let ocr = RemoteOcr {
                    server: w.cell.clone().into(),
                    node: w.node.clone(),
                };
                self.slots.insert(
                    index,
                    RemoteSlot {
                        member: id,
                        ocr: ocr.clone(),
                        worker: None,
                        run: None,
                    },
                );
                added.push((index, ocr));
            }
        }
        added
    }

    /// Cards in flight on the member of slot `index`.
    pub fn member_busy(&self, index: usize) -> usize {
        let Some(member) = self.slots.get(&index).map(|s| s.member) else {
            return 0;
        };
        self.slots
            .values()
            .filter(|s| s.member == member && s.run.is_some())
            .count()
    }
}

impl super::OcrPoolState {
    /// The idle worker whose pool (this node's, or a remote node's) has the fewest cards
    /// in flight.
    pub(super) fn pick_idle(&mut self) -> Option<usize> {
        let local_busy = self.busy.iter().filter(|b| b.is_some()).count();
        let n = self.workers.len();
        let load = |i: usize| {
            if i < n {
                local_busy
            } else {
                self.remote.member_busy(i)
            }
        };
        let best = (0..self.idle.len()).min_by_key(|&pos| load(self.idle[pos]))?;
        Some(self.idle.swap_remove(best))
    }

    /// Removes remote slot `index`, stopping its worker; returns the run it had.
    pub(super) fn drop_remote(
        &mut self,
        pool: &ActorRef<OcrPoolMsg>,
        index: usize,
    ) -> Option<(DocumentId, Lease)> {
        self.idle.retain(|&i| i != index);
        let slot = self.remote.slots.remove(&index)?;
        if let Some(worker) = slot.worker {
            worker.unlink(pool.get_cell());
            worker.kill();
        }
        slot.run
    }

    /// Matches the remote slots to the cluster: the slots of pools that left or whose node
    /// is down are stopped and their documents requeued at once; pools that joined or came
    /// back get a slot per card they read at once.
    pub(super) async fn reconcile(&mut self, pool: &ActorRef<OcrPoolMsg>) {
        let Some(roster) = self.args.roster.clone() else {
            return;
        };
        let wanted = wanted(&roster);
        tracing::debug!(
            wanted = wanted.len(),
            slots = self.remote.slots.len(),
            "OCR reconcile"
        );
        for (index, slot) in self.remote.prune(&wanted) {
            self.idle.retain(|&i| i != index);
            if let Some(worker) = slot.worker {
                worker.unlink(pool.get_cell());
                worker.kill();
            }
            if let Some((id, _)) = &slot.run {
                tracing::warn!(document_id = %id, node = %slot.ocr.node, "OCR node lost mid-read; document requeued");
            }
            self.abandon_run(slot.run, Abandon::NodeLost);
        }
        for (index, ocr) in self.remote.grow(&wanted, self.workers.len()) {
            let node = ocr.node.clone();
            match self.start_worker(pool, index, Reader::Remote(ocr)).await {
                Ok(worker) => {
                    if let Some(slot) = self.remote.slots.get_mut(&index) {
                        slot.worker = Some(worker);
                        self.idle.push(index);
                    }
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot start a worker for a remote OCR pool");
                    self.remote.slots.remove(&index);
                }
            }
        }
    }
}
