//! OcrServer: this node's OCR devices, serving `api` nodes over the cluster. It joins the
//! `ocr:<kind>` process group of its devices' kind and reads each card it is sent on the
//! first free device (a card waits in its own task while all are busy; the mailbox never
//! does), answering with the page. It keeps no documents, no database and no files: the
//! `api` node that asked claims, fences and records. A frame it cannot decode is logged and
//! dropped.

use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef, pg};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::{
    ModelSlot, load_devices,
    worker::{PageRead, read_page},
};
use crate::{
    cluster::{
        Load,
        wire::{self, Frame, OcrServerMsg, PageWire, ReadReply},
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
}

pub struct OcrServerState {
    /// Devices free to take a card.
    free: Arc<Mutex<Vec<ModelSlot>>>,
    permits: Arc<Semaphore>,
    limits: ImageLimits,
    load: Arc<Load>,
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
            free: Arc::new(Mutex::new(models.into_iter().map(|(_, m)| m).collect())),
            limits: args.image_limits,
            load: args.load,
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
        let (free, permits, limits, load) = (
            state.free.clone(),
            state.permits.clone(),
            state.limits,
            state.load.clone(),
        );
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let slot = free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let Some(slot) = slot else { return };
            load.in_flight
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let models = slot
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let span = tracing::info_span!(
                "ocr_serve",
                document_id = %request.document_id,
                correlation_id = request.correlation_id.as_deref().unwrap_or(""),
            );
            let page = async {
                tracing::info!(device = %models.device, "reading a card for another node");
                read_page(&models, request.bytes, limits, || Ok(())).await
            }
            .instrument(span)
            .await;
            free.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(slot);
            load.in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            load.processed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let answer = match page {
                PageRead::Page(page) => ReadReply::Page(PageWire::from(&*page)),
                PageRead::Unreadable(code) => ReadReply::Unreadable(code.into()),
                PageRead::EngineError(e) | PageRead::NodeLost(e) => ReadReply::EngineError(e),
            };
            let _ = reply.send(Frame::new(answer));
        });
        Ok(())
    }
}
