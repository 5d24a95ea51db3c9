//! # FiLot
//!
//! KYC verification runtime for Indonesian identity documents: one binary, a supervised actor
//! tree, a REST API.
//!
//! # Layout
//!
//! - [`config`]: the one `Settings` tree (defaults ← `cluster.toml` ← `FILOT_*` env).
//! - [`kyc`]: pure domain types and rules (ids, document types); no I/O.
//! - [`store`]: sqlx repositories over SQLite or Postgres; the encrypted blob store.
//! - [`actors`]: the actors that own state (one DocumentActor per active document).
//! - [`supervision`]: the supervisors, their restart policies, and the handle into the tree.
//! - [`http`]: the poem-openapi API, auth, rate limits, the error shape.
//! - [`telemetry`]: logging with personal data masked; correlation ids.
//! - [`secrets`]: keys generated into the data directory for the zero-setup default.
//!
//! [`Application::build`] wires these together; [`Application::run_until_stopped`] serves
//! until the shutdown future resolves, then drains requests and stops the tree.

pub mod actors;
pub mod buli2;
pub mod clock;
pub mod config;
pub mod gpu;
pub mod http;
pub mod kyc;
pub mod secrets;
pub mod store;
pub mod supervision;
pub mod telemetry;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};
use ractor::{Actor, ActorRef};

use crate::{
    actors::DocumentContext,
    config::Settings,
    http::AppState,
    store::{Db, blobs::BlobStore},
    supervision::{
        Documents, Slot, Verifications,
        root::{RootArgs, RootMsg, RootSupervisor},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretError),
    #[error(transparent)]
    Auth(#[from] http::auth::AuthError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("blob store: {0}")]
    Blobs(#[from] store::blobs::BlobError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("actor tree failed to start: {0}")]
    Actors(String),
    #[error("redis_url: {0}")]
    Redis(String),
}

/// Opens the database named by the settings, creating the data directory, and migrates it.
pub async fn open_database(settings: &Settings) -> Result<Db, StartError> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| StartError::DataDir(settings.data_dir.display().to_string(), e))?;
    let db = Db::connect(
        &settings.effective_database_url(),
        settings.database.max_connections,
        Duration::from_millis(settings.database.acquire_timeout_ms),
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}

/// A built service: bound, migrated, actor tree running, not yet serving.
pub struct Application {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    state: Arc<AppState>,
    root: ActorRef<RootMsg>,
    root_handle: tokio::task::JoinHandle<()>,
    janitor: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let settings = Arc::new(settings);
        let m = &settings.metrics;
        telemetry::metrics::install(m.emf_enabled.then(|| telemetry::metrics::EmfOptions {
            namespace: m.emf_namespace.clone(),
            output: m.emf_output.clone(),
            interval: Duration::from_secs(m.emf_interval_secs),
        }));
        let db = open_database(&settings).await?;
        let auth = http::auth::AuthKeys::from_settings(&settings)?;
        let blob_key = secrets::blob_key(&settings)?;
        let blobs = Arc::new(BlobStore::open(settings.data_dir.join("blobs"), &blob_key)?);
        match blobs.sweep_tmp(Duration::from_secs(60)) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                removed = n,
                "removed temp files left by an interrupted upload"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot sweep blob temp directory"),
        }

        let lease_ttl = Duration::from_millis(settings.redis.lease_ttl_ms);
        let redis = match &settings.redis_url {
            Some(url) => Some(
                store::redis::Redis::connect(
                    url.expose(),
                    settings.redis.pool_size,
                    Duration::from_millis(settings.redis.timeout_ms),
                )
                .map_err(|e| StartError::Redis(e.to_string()))?,
            ),
            None => None,
        };
        let leases = match &redis {
            Some(r) => store::leases::Leases::redis(r.clone(), &settings.node.name, lease_ttl),
            None => store::leases::Leases::local(&settings.node.name, lease_ttl),
        };
        let pool_slot = supervision::PoolSlot::default();
        let ctx = Arc::new(DocumentContext::new(
            db.clone(),
            blobs.clone(),
            Duration::from_secs(settings.documents.actor_idle_secs),
        ));
        let slot = Slot::default();
        let documents = Documents::new(slot.clone(), settings.actor_call_timeout(), ctx.clone());
        let clock = clock::Clock::default();
        let w = &settings.workflow;
        let verification_ctx = Arc::new(actors::verification::VerificationContext {
            db: db.clone(),
            blobs: blobs.clone(),
            clock: clock.clone(),
            policy: kyc::workflow::Policy {
                approve_at: w.approve_at,
                reject_below: w.reject_below,
                blocking: w.blocking_issues.clone(),
            },
            review_sla: Duration::from_secs(w.review_sla_hours * 3_600),
            idle_after: Duration::from_secs(w.actor_idle_secs),
            leases: leases.clone(),
            lease_wait: Duration::from_millis(settings.redis.lease_wait_ms),
        });
        let verification_slot = Slot::default();
        let verifications = Verifications::new(
            verification_slot.clone(),
            settings.actor_call_timeout(),
            verification_ctx.clone(),
        );
        let restart_window = Duration::from_secs(settings.documents.restart_window_secs);
        let ocr = actors::ocr::OcrPoolArgs {
            documents: documents.clone(),
            blobs: blobs.clone(),
            leases: leases.clone(),
            devices: settings.ocr.devices.clone(),
            params: settings.ocr.params.clone(),
            poll: Duration::from_millis(settings.ocr.poll_ms),
            max_restarts: settings.ocr.max_restarts,
            restart_window: Duration::from_secs(settings.ocr.restart_window_secs),
            batch_lines: settings.ocr.batch_lines,
            batch_wait: Duration::from_millis(settings.ocr.batch_wait_ms),
            job_deadline: Duration::from_secs(settings.ocr.job_deadline_secs),
            max_attempts: settings.ocr.max_attempts,
        };
        let reaper = supervision::reaper::ReaperArgs {
            documents: documents.clone(),
            leases: leases.clone(),
            pool: pool_slot.clone(),
            poll: Duration::from_millis(settings.ocr.reaper_poll_ms),
            max_attempts: settings.ocr.max_attempts,
        };
        let o = &settings.outbox;
        // BULI2 delivery needs both settings (config validation refuses a URL without a
        // secret); webhooks are delivered either way.
        let buli2 = settings
            .buli2_url
            .as_deref()
            .zip(settings.buli2_secret.as_ref());
        let client = buli2::client::Buli2Client::new(
            buli2.map_or("", |(url, _)| url),
            buli2.map_or(&[][..], |(_, secret)| secret.expose().as_bytes()),
            buli2::client::ClientSettings {
                timeout: Duration::from_secs(o.timeout_secs),
                attempts: o.attempts,
                backoff_min: Duration::from_millis(o.backoff_min_ms),
                backoff_max: Duration::from_millis(o.backoff_max_ms),
                breaker_failures: o.breaker_failures,
                breaker_cooldown: Duration::from_millis(o.breaker_cooldown_ms),
            },
        )
        .map_err(|e| StartError::Actors(format!("HTTP client: {e}")))?;
        let outbox = Some(actors::outbox::OutboxArgs {
            db: db.clone(),
            blobs: blobs.clone(),
            clock: clock.clone(),
            verifications: verifications.clone(),
            client: Arc::new(client),
            leases: leases.clone(),
            buli2: buli2.is_some(),
            poll: Duration::from_millis(o.poll_ms),
            max_rounds: o.max_rounds,
            round_delay: Duration::from_millis(o.round_delay_ms),
            round_delay_max: Duration::from_millis(o.round_delay_max_ms),
        });
        let args = RootArgs {
            documents: (ctx.clone(), slot.clone()),
            verifications: (verification_ctx, verification_slot),
            max_restarts: settings.documents.max_restarts,
            restart_window,
            ocr: Some(ocr),
            driver: actors::workflow_driver::DriverArgs {
                db: db.clone(),
                clock: clock.clone(),
                verifications: verifications.clone(),
                poll: Duration::from_millis(settings.workflow.poll_ms),
            },
            outbox,
            reaper,
        };
        let (root, root_handle) = Actor::spawn(None, RootSupervisor, args)
            .await
            .map_err(|e| StartError::Actors(e.to_string()))?;

        let limits = Arc::new(http::rate_limit::RateLimits::new(
            &settings.limits,
            redis.clone(),
        ));
        let janitor = limits.spawn_janitor();
        let state = Arc::new(AppState {
            settings: settings.clone(),
            db,
            blobs,
            documents,
            verifications,
            clock,
            auth,
            limits,
            leases,
            redis,
            ocr_pool: pool_slot,
        });

        let acceptor = TcpListener::bind(settings.listen_addr())
            .into_acceptor()
            .await
            .map_err(|e| StartError::Bind(settings.listen.clone(), e))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or_else(|| settings.listen_addr());
        Ok(Self {
            acceptor,
            addr,
            state,
            root,
            root_handle,
            janitor,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` resolves (or the actor tree escalates), then stops accepting,
    /// lets in-flight requests finish (up to 30 s), and stops the actor tree.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            acceptor,
            state,
            root,
            mut root_handle,
            janitor,
            ..
        } = self;
        let (tree_down_tx, tree_down_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutdown requested; draining requests"),
                _ = tree_down_rx => tracing::error!("actor tree stopped; shutting down"),
            }
        };
        let server = Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            http::app(state.clone()),
            signal,
            Some(Duration::from_secs(30)),
        );
        tokio::pin!(server);
        let mut tree_down_tx = Some(tree_down_tx);
        let result = loop {
            tokio::select! {
                r = &mut server => break r,
                _ = &mut root_handle, if tree_down_tx.is_some() => {
                    if let Some(tx) = tree_down_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        };
        janitor.abort();
        root.stop(Some("shutdown".into()));
        let _ = tokio::time::timeout(Duration::from_secs(10), root_handle).await;
        state.db.close().await;
        telemetry::metrics::flush();
        tracing::info!("stopped");
        result
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
