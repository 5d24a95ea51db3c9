//! OcrServer: this node's OCR devices, serving `api` nodes over the cluster. It joins the
//! `ocr:<kind>` process group of its devices' kind and reads each card it is sent on the
//! first free device (a card waits in its own task while all are busy; the mailbox never
//! does), answering with the page. It keeps no documents, no database and no files: the
//! `api` node that asked claims, fences and records. A frame it cannot decode is logged and
//! dropped. A read past `ocr.job_deadline` is answered as a model error (the `api` node
//! requeues the card) and its device gets freshly loaded models: the hung call keeps the old
//! ones, as a restarted local worker's does.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, pg};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::{
    ModelSlot, load_devices,
    worker::{PageRead, read_page},
};
use crate::{
    cluster::{
        Load,
        wire::{self, Frame, OcrServerMsg, PageWire, ReadReply, ReadRequest},
    },
    gpu::OcrParams,
    media::ImageLimits,
};

pub struct OcrServerArgs {
    /// One reader per entry: `cpu` or `cuda:N`.
    pub devices: Vec<String>,
    pub params: OcrParams,
    pub batch_lines: usize,
    pub batch_wait: std::time::Duration,
    pub image_limits: ImageLimits,
    /// This node's counters, reported in its heartbeats.
    pub load: Arc<Load>,
    /// How long one read may take before its device is given new models.
    pub job_deadline: Duration,
}

/// What reloading a device needs.
#[derive(Clone)]
struct Reload {
    params: OcrParams,
    batch_lines: usize,
    batch_wait: Duration,
}

/// The server's state; each read takes a clone.
#[derive(Clone)]
pub struct OcrServerState {
    free: Arc<Mutex<Vec<(String, ModelSlot)>>>,
    permits: Arc<Semaphore>,
    limits: ImageLimits,
    load: Arc<Load>,
    deadline: Duration,
    reload: Reload,
}

/// Reads one card on the first free device and answers.
async fn serve(s: OcrServerState, request: ReadRequest, reply: RpcReplyPort<Frame<ReadReply>>) {
    let answer = |a| {
        let _ = reply.send(Frame::new(a));
    };
    let Ok(permit) = s.permits.clone().acquire_owned().await else {
        return answer(ReadReply::EngineError("OCR server stopping".into()));
    };
    let taken = s
        .free
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let Some((device, slot)) = taken else {
        return answer(ReadReply::EngineError("no OCR device free".into()));
    };
    s.load.in_flight.fetch_add(1, Ordering::Relaxed);
    let models = slot
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let span = tracing::info_span!(
        "ocr_serve",
        document_id = %request.document_id,
        correlation_id = request.correlation_id.as_deref().unwrap_or(""),
    );
    let read = async {
        tracing::info!(device = %models.device, "reading a card for another node");
        tokio::time::timeout(
            s.deadline,
            read_page(
                &models,
                request.bytes,
                s.limits,
                request.doc_type,
                before_read(),
            ),
        )
        .await
    }
    .instrument(span.clone())
    .await;
    s.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    s.load.processed.fetch_add(1, Ordering::Relaxed);
    let page = match read {
        Ok(page) => {
            s.free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((device, slot));
            page
        }
        Err(_) => {
            span.in_scope(|| tracing::error!(deadline = ?s.deadline, %device, "OCR read past its deadline; reloading the device's models"));
            let r = &s.reload;
            match load_devices(
                std::slice::from_ref(&device),
                &r.params,
                r.batch_lines,
                r.batch_wait,
            )
            .await
            {
                Ok(mut fresh) => s
                    .free
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .append(&mut fresh),
                Err(e) => {
                    tracing::error!(%device, error = %e, "cannot reload the device; serving with one device fewer");
                    permit.forget();
                }
            }
            PageRead::EngineError(format!("read past its deadline ({:?})", s.deadline))
        }
    };
    answer(match page {
        PageRead::Page(page) => ReadReply::Page(Box::new(PageWire::from(&*page))),
        PageRead::Unreadable(code) => ReadReply::Unreadable(code.into()),
        PageRead::EngineError(e) | PageRead::NodeLost(e) => ReadReply::EngineError(e),
    });
}

/// Runs on the read's blocking thread before the model; test builds can make the first read
/// hang (`TEST_FILOT_OCR_SERVER_HANG_FIRST`), as a wedged device would.
fn before_read() -> impl FnOnce() -> Result<(), PageRead> + Send + 'static {
    #[cfg(feature = "test-hooks")]
    {
        static HUNG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let hang = std::env::var_os("TEST_FILOT_OCR_SERVER_HANG_FIRST").is_some()
            && !HUNG.swap(true, Ordering::SeqCst);
        move || {
            if hang {
                loop {
                    std::thread::park();
                }
            }
            Ok(())
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        || Ok(())
    }
}

pub struct OcrServer;

impl Actor for OcrServer {
    type Msg = OcrServerMsg;
    type State = OcrServerState;
    type Arguments = OcrServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<OcrServerMsg>,
        args: OcrServerArgs,
    ) -> Result<OcrServerState, ActorProcessingErr> {
        let models = load_devices(
            &args.devices,
            &args.params,
            args.batch_lines,
            args.batch_wait,
        )
        .await?;
        let mut kinds: Vec<&str> = args.devices.iter().map(|d| wire::device_kind(d)).collect();
        kinds.dedup();
        for kind in kinds {
            pg::join(wire::ocr_group(kind), vec![myself.get_cell()]);
        }
        tracing::info!(
            devices = args.devices.len(),
            "OCR server ready for other nodes"
        );
        Ok(OcrServerState {
            permits: Arc::new(Semaphore::new(models.len())),
            free: Arc::new(Mutex::new(models)),
            limits: args.image_limits,
            load: args.load,
            deadline: args.job_deadline,
            reload: Reload {
                params: args.params,
                batch_lines: args.batch_lines,
                batch_wait: args.batch_wait,
            },
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<OcrServerMsg>,
        msg: OcrServerMsg,
        state: &mut OcrServerState,
    ) -> Result<(), ActorProcessingErr> {
        let OcrServerMsg::Read(frame, reply) = msg;
        let request = match frame.0 {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(error = %e, "dropped a read request that cannot be decoded");
                return Ok(());
            }
        };
        tokio::spawn(serve(state.clone(), request, reply));
        Ok(())
    }
}
