//! # FiLot
//!
//! KYC verification runtime for Indonesian identity documents: one binary, a supervised actor
//! tree, a REST API.
//!
//! # Layout
//!
//! - [`config`]: the one `Settings` tree (defaults ← `cluster.toml` ← `FILOT_*` env).
//! - [`kyc`]: pure domain types and rules (ids, document types); no I/O.
//! - [`media`]: what an uploaded file is, its size limits, and bounded decoding; no I/O.
//! - [`resilience`]: back-off, restart budgets, polling and outage logging, written once.
//! - [`store`]: sqlx repositories over SQLite or Postgres; the encrypted blob store.
//! - [`gpu`]: the OCR models (Burn), their pipeline and the report/bench tools around it.
//! - [`buli2`]: outbound HTTP (BULI2's decisions, status webhooks, where a client-chosen URL
//!   may point), the signed wire format, and a BULI2 simulator.
//! - [`actors`]: the actors that own state (one DocumentActor per active document), the OCR
//!   pool and the outbox's delivery lanes.
//! - [`supervision`]: the supervisors, their restart policies, and the handle into the tree.
//! - [`http`]: the poem-openapi API, the server loop and its timeouts, auth, rate limits, the
//!   error shape, the served OpenAPI document.
//! - [`telemetry`]: logging with personal data masked; correlation ids; metrics.
//! - [`secrets`]: keys generated into the data directory for the zero-setup default.
//! - [`clock`]: the service clock tests can move (review SLA timers).
//! - [`cli`]: what each `filot` subcommand does once `main.rs` has parsed its arguments.
//! - `testing` (test builds only): failure points and fakes the tests arm.
//!
//! [`Application::build`] wires these together; [`Application::run_until_stopped`] serves
//! until the shutdown future resolves, then drains requests and stops the tree.

pub mod actors;
pub mod buli2;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod gpu;
pub mod http;
pub mod kyc;
pub mod media;
pub mod ocr_node;
pub mod resilience;
pub mod secrets;
pub mod store;
pub mod supervision;
pub mod telemetry;
#[cfg(feature = "test-hooks")]
pub mod testing;

#[cfg(test)]
mod layout;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use ractor::{Actor, ActorRef};

use crate::{
    actors::{DocumentContext, Documents, Verifications, keyed::Slot},
    config::Settings,
    http::AppState,
    resilience::Poller,
    store::{Db, blobs::BlobStore},
    supervision::root::{RootArgs, RootMsg, RootSupervisor},
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
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("ocr.challenger: {0}")]
    Challenger(#[from] gpu::weights::WeightsError),
}

/// Opens the database named by the settings, creating the data directory, and migrates it.
pub async fn open_database(settings: &Settings) -> Result<Db, StartError> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| StartError::DataDir(settings.data_dir.display().to_string(), e))?;
    let db = Db::connect(
        &settings.effective_database_url(),
        settings.database.max_connections,
        settings.database.acquire_timeout,
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}

/// A built service: bound, migrated, actor tree running, not yet serving.
pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    /// The separate `/metrics` listener, when `metrics.listen` is set.
    metrics_listener: Option<tokio::net::TcpListener>,
    state: Arc<AppState>,
    root: ActorRef<RootMsg>,
    root_handle: tokio::task::JoinHandle<()>,
    janitor: tokio::task::JoinHandle<()>,
    /// This node's cluster membership, when it is in a cluster.
    cluster: Option<cluster::Cluster>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let settings = Arc::new(settings);
        telemetry::metrics::install_for(&settings.metrics);
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

        let lease_ttl = settings.redis.lease_ttl;
        let redis = match &settings.redis_url {
            Some(url) => Some(
                store::redis::Redis::connect(
                    url.expose(),
                    settings.redis.pool_size,
                    settings.redis.timeout,
                )
                .map_err(|e| StartError::Redis(e.to_string()))?,
            ),
            None => None,
        };
        let leases = match &redis {
            Some(r) => store::leases::Leases::redis(r.clone(), &settings.node.name, lease_ttl),
            None => store::leases::Leases::local(&settings.node.name, lease_ttl),
        };
        let pool_slot = actors::PoolSlot::default();
        let ctx = Arc::new(DocumentContext::new(
            db.clone(),
            blobs.clone(),
            settings.documents.actor_idle,
        ));
        let slot = Slot::default();
        let documents = Documents::new(
            slot.clone(),
            settings.documents.actor_call_timeout,
            ctx.clone(),
        );
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
                four_eyes: w.four_eyes,
            },
            review_sla: w.review_sla,
            claim_ttl: w.claim_ttl,
            idle_after: w.actor_idle,
            leases: leases.clone(),
            lease_wait: settings.redis.lease_wait,
            max_active_per_owner: settings.limits.max_active_verifications_per_user,
        });
        let verification_slot = Slot::default();
        let verifications = Verifications::new(
            verification_slot.clone(),
            settings.documents.actor_call_timeout,
            verification_ctx.clone(),
        );
        let restarts = settings.restarts();
        let pollers = resilience::Pollers {
            ocr: Poller::every(settings.ocr.poll_interval),
            reaper: Poller::every(settings.ocr.reaper_poll_interval),
            outbox: Poller::every(settings.outbox.poll_interval),
            webhooks: Poller::every(settings.outbox.poll_interval),
            workflow: Poller::every(settings.workflow.poll_interval),
        };
        let has_role = |role: &str| settings.node.roles.iter().any(|r| r == role);
        // An `api` node reads with its own devices when it has the `ocr` role, and with
        // every OCR-only node's over the cluster.
        let cluster = cluster::Cluster::start(&settings, 0).await?;
        let local_devices = if has_role("ocr") {
            settings.ocr.devices.clone()
        } else {
            Vec::new()
        };
        let runs_ocr = !local_devices.is_empty() || cluster.is_some();
        // What reads a card, fingerprinted once: the key cached readings are filed under.
        let reading_engine = settings
            .ocr
            .cache_readings
            .then(|| settings.ocr.params.engine_fingerprint());
        let c = &settings.ocr.challenger;
        let weights = |path, sha256| gpu::weights::WeightsFile { path, sha256 };
        let det = weights(&c.det_weights, &c.det_weights_sha256);
        let rec = weights(&c.rec_weights, &c.rec_weights_sha256);
        let challenger_engine =
            actors::challenger::fingerprint(&c.params, &gpu::weights::describe(det, rec));
        // The challenger runs (and documents are sampled for it) where cards are read with
        // this node's own devices.
        let challenger = match local_devices.first() {
            Some(first) if c.share_percent > 0 => Some(actors::challenger::ChallengerArgs {
                db: db.clone(),
                blobs: blobs.clone(),
                leases: leases.clone(),
                engine: actors::challenger::ChallengerEngine {
                    device: Some(c.device.trim())
                        .filter(|d| !d.is_empty())
                        .unwrap_or(first)
                        .to_string(),
                    params: c.params.clone(),
                    weights: gpu::weights::Weights::load(det, rec, c.params.recogniser)?,
                },
                fingerprint: challenger_engine.clone(),
                poll: Poller::every(settings.ocr.poll_interval),
                image_limits: settings.limits.image(),
            }),
            _ => None,
        };
        let ocr = actors::ocr::OcrPoolArgs {
            roster: cluster.as_ref().map(|c| c.roster.clone()),
            documents: documents.clone(),
            blobs: blobs.clone(),
            leases: leases.clone(),
            devices: local_devices,
            params: settings.ocr.params.clone(),
            poll: pollers.ocr.clone(),
            restarts: restarts.ocr,
            batch_lines: settings.ocr.batch_lines,
            batch_wait: settings.ocr.batch_wait,
            job_deadline: settings.ocr.job_deadline,
            max_attempts: settings.ocr.max_attempts,
            image_limits: settings.limits.image(),
            reading_engine: reading_engine.clone(),
            challenge_share: challenger.as_ref().map_or(0, |_| c.share_percent),
        };
        let reaper = supervision::reaper::ReaperArgs {
            documents: documents.clone(),
            leases: leases.clone(),
            pool: pool_slot.clone(),
            poll: pollers.reaper.clone(),
            max_attempts: settings.ocr.max_attempts,
        };
        let o = &settings.outbox;
        let common = actors::outbox::OutboxCommon {
            db: db.clone(),
            blobs: blobs.clone(),
            clock: clock.clone(),
            verifications: verifications.clone(),
            leases: leases.clone(),
            poll: pollers.outbox.clone(),
            max_rounds: o.max_rounds,
            round_delay: o.round_delay,
            round_delay_max: o.round_delay_max,
        };
        let rounds = |timeout, failures, cooldown| buli2::client::ClientSettings {
            timeout,
            attempts: o.attempts,
            backoff_min: o.backoff_min,
            backoff_max: o.backoff_max,
            breaker_failures: failures,
            breaker_cooldown: cooldown,
        };
        let http_client = |e: reqwest::Error| StartError::Actors(format!("HTTP client: {e}"));
        // BULI2 delivery needs both settings (config validation refuses a URL without a
        // secret); without them decisions wait in the outbox. Webhooks are delivered either
        // way. Both lanes run only on `outbox` nodes.
        let outbox = match (&settings.buli2_url, &settings.buli2_secret) {
            (Some(url), Some(secret)) if has_role("outbox") => Some(actors::outbox::OutboxArgs {
                common: common.clone(),
                client: Arc::new(
                    buli2::client::Buli2Client::new(
                        url,
                        secret.expose().as_bytes(),
                        rounds(o.timeout, o.breaker_failures, o.breaker_cooldown),
                    )
                    .map_err(http_client)?,
                ),
            }),
            _ => None,
        };
        let webhooks = actors::webhook_lane::WebhookLaneArgs {
            common: actors::outbox::OutboxCommon {
                poll: pollers.webhooks.clone(),
                ..common
            },
            client: Arc::new(
                buli2::webhook::WebhookClient::new(
                    rounds(
                        o.webhook_timeout,
                        o.webhook_breaker_failures,
                        o.webhook_breaker_cooldown,
                    ),
                    o.webhook_allow_private,
                )
                .map_err(http_client)?,
            ),
            per_endpoint: o.webhook_concurrency_per_endpoint as usize,
            max_in_flight: o.webhook_max_in_flight as usize,
        };
        let args = RootArgs {
            documents: (ctx.clone(), slot.clone(), restarts.document),
            verifications: (verification_ctx, verification_slot, restarts.verification),
            supervisors: restarts.supervisors,
            ocr: runs_ocr.then_some(ocr),
            driver: actors::workflow_driver::DriverArgs {
                db: db.clone(),
                clock: clock.clone(),
                verifications: verifications.clone(),
                poll: pollers.workflow.clone(),
            },
            outbox,
            webhooks: has_role("outbox").then_some(webhooks),
            reaper,
            challenger,
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
            cluster: cluster.as_ref().map(|c| c.roster.clone()),
            pollers,
            upload_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.limits.max_concurrent_uploads as usize,
            )),
            reading_engine,
            challenger_engine,
        });

        let listener = tokio::net::TcpListener::bind(settings.listen_addr())
            .await
            .map_err(|e| StartError::Bind(settings.listen.clone(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(settings.listen.clone(), e))?;
        let metrics_listener = match settings.metrics.listen.as_str() {
            "" => None,
            m => Some(
                tokio::net::TcpListener::bind(m)
                    .await
                    .map_err(|e| StartError::Bind(m.to_string(), e))?,
            ),
        };
        Ok(Self {
            listener,
            addr,
            metrics_listener,
            state,
            root,
            root_handle,
            janitor,
            cluster,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The separate metrics listener's address, when `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` resolves (or the actor tree escalates), then stops accepting,
    /// lets in-flight requests finish (up to `http.shutdown_grace`), and stops the tree.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            metrics_listener,
            state,
            root,
            mut root_handle,
            janitor,
            cluster,
            ..
        } = self;
        let limits = http::server::ConnectionLimits::from(&state.settings.http);
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = metrics_listener.map(|l| {
            let app = http::metrics_app(state.clone());
            tokio::spawn(http::server::serve(l, app, limits, async {
                let _ = metrics_stopped.await;
            }))
        });
        let app = http::app(state.clone());
        let result = http::server::serve_while(
            listener,
            app,
            limits,
            shutdown,
            &mut root_handle,
            "actor tree",
        )
        .await;
        let _ = stop_metrics.send(());
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        janitor.abort();
        root.stop(Some("shutdown".into()));
        if let Some(cluster) = &cluster {
            cluster.stop();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), root_handle).await;
        state.db.close().await;
        telemetry::metrics::flush();
        tracing::info!("stopped");
        result
    }
}

/// Resolves on SIGTERM or Ctrl-C. The SIGTERM handler is installed when this is called, not
/// when the future is first polled: a SIGTERM that arrives while the server is still starting
/// must begin a clean shutdown, not kill the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
}
