//! An OCR-only node (`node.roles = ["ocr"]`): its devices' models behind an OCR server that
//! `api` nodes send cards to over the cluster, and an HTTP listener with `/health/*` and
//! `/metrics` only. It opens no database, keeps no files and needs no shared disk: a GPU box
//! needs nothing but the cluster address of an `api` node and the cookie.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use ractor::{Actor, ActorRef};

use crate::{
    StartError,
    actors::ocr::{OcrServer, OcrServerArgs},
    cluster::{Cluster, wire::OcrServerMsg},
    config::Settings,
    http, telemetry,
};

pub struct OcrNode {
    settings: Arc<Settings>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    cluster: Cluster,
    server: ActorRef<OcrServerMsg>,
    server_handle: tokio::task::JoinHandle<()>,
}

impl OcrNode {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let settings = Arc::new(settings);
        telemetry::metrics::install_for(&settings.metrics);
        let devices = settings.ocr.devices.clone();
        let cluster = Cluster::start(&settings, devices.len() as u32)
            .await?
            .ok_or_else(|| StartError::Actors("an OCR-only node needs cluster.listen".into()))?;
        let args = OcrServerArgs {
            devices,
            params: settings.ocr.params.clone(),
            batch_lines: settings.ocr.batch_lines,
            batch_wait: settings.ocr.batch_wait,
            image_limits: settings.limits.image(),
            load: cluster.roster.load.clone(),
            job_deadline: settings.ocr.job_deadline,
        };
        let (server, server_handle) = Actor::spawn(None, OcrServer, args)
            .await
            .map_err(|e| StartError::Actors(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(settings.listen_addr())
            .await
            .map_err(|e| StartError::Bind(settings.listen.clone(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(settings.listen.clone(), e))?;
        Ok(Self {
            settings,
            listener,
            addr,
            cluster,
            server,
            server_handle,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves health and metrics until `shutdown` resolves (or the OCR server stops), then
    /// leaves the cluster: `api` nodes requeue whatever it was reading.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            settings,
            listener,
            cluster,
            server,
            mut server_handle,
            ..
        } = self;
        let limits = http::server::ConnectionLimits::from(&settings.http);
        let app = http::ocr_node_app(settings.clone(), cluster.roster.clone(), server.clone());
        let result = http::server::serve_while(
            listener,
            app,
            limits,
            shutdown,
            &mut server_handle,
            "OCR server",
        )
        .await;
        server.stop(Some("shutdown".into()));
        let _ = tokio::time::timeout(Duration::from_secs(10), server_handle).await;
        cluster.stop();
        telemetry::metrics::flush();
        tracing::info!("stopped");
        result
    }
}
