//! WebhookLane: delivers status webhooks from the outbox, apart from BULI2's decisions.
//!
//! A client's endpoint may accept a connection and never answer; here that costs only its own
//! deliveries. Every `poll` the lane lists due webhook rows and starts each one's round as a
//! task of its own (the actor's mailbox never waits on the network), at most
//! `per_endpoint` at once per webhook and `max_in_flight` in all; a row already in flight is
//! not started twice, and one verification's changes go to one webhook one round at a time,
//! oldest first (a retry within a round comes before the next change). Rounds run through the webhook client (short timeout, its own breaker
//! per endpoint, public addresses only) and hold the row's lease like decisions do, so rows
//! stay exactly-once per key across nodes and survive restarts (the database is the queue).
//! A round stopped by a shutdown leaves its row pending: it is sent again, same key.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::outbox::{BATCH, OutboxCommon, delivery_span, open_payload, record_round, under_lease};
use crate::{
    buli2::{client::RoundOutcome, webhook::WebhookClient},
    resilience::Outage,
    store::{
        outbox::{self, Kind, OutboxRow},
        webhooks,
    },
    telemetry::correlation::CorrelationId,
};

pub enum WebhookLaneMsg {
    Poll,
    /// A round finished (whatever its outcome): the row, its endpoint and its stream are free
    /// again.
    Done {
        row: String,
        endpoint: String,
        verification: String,
    },
}

impl ractor::Message for WebhookLaneMsg {}

#[derive(Clone)]
pub struct WebhookLaneArgs {
    pub common: OutboxCommon,
    pub client: Arc<WebhookClient>,
    /// Rounds in flight to one webhook at once.
    pub per_endpoint: usize,
    /// Rounds in flight in all.
    pub max_in_flight: usize,
}

pub struct WebhookLaneState {
    args: WebhookLaneArgs,
    in_flight: HashSet<String>,
    per_endpoint: HashMap<String, usize>,
    /// `(webhook, verification)` pairs with a round in flight.
    streams: HashSet<(String, String)>,
    /// The lease service's outages, shared by the rounds (each logged once).
    leases_down: Arc<Outage>,
    tasks: JoinSet<()>,
}

pub struct WebhookLane;

impl Actor for WebhookLane {
    type Msg = WebhookLaneMsg;
    type State = WebhookLaneState;
    type Arguments = WebhookLaneArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: WebhookLaneArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.common.poll.start(&myself, || WebhookLaneMsg::Poll);
        Ok(WebhookLaneState {
            args,
            in_flight: HashSet::new(),
            per_endpoint: HashMap::new(),
            streams: HashSet::new(),
            leases_down: Arc::new(Outage::new("webhook lane")),
            tasks: JoinSet::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.tasks.abort_all();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: WebhookLaneMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebhookLaneMsg::Done {
                row,
                endpoint,
                verification,
            } => {
                state.in_flight.remove(&row);
                state.streams.remove(&(endpoint.clone(), verification));
                if let Some(n) = state.per_endpoint.get_mut(&endpoint) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        state.per_endpoint.remove(&endpoint);
                    }
                }
            }
            WebhookLaneMsg::Poll => {
                let _round = state.args.common.poll.round();
                // Reap finished tasks (their results went through `Done`).
                while state.tasks.try_join_next().is_some() {}
                dispatch(&myself, state).await;
            }
        }
        Ok(())
    }
}

async fn dispatch(myself: &ActorRef<WebhookLaneMsg>, state: &mut WebhookLaneState) {
    let c = &state.args.common;
    if state.in_flight.len() >= state.args.max_in_flight {
        return;
    }
    let rows = match outbox::due(&c.db, c.clock.now_millis(), BATCH, Kind::Webhook).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "webhook lane cannot read due rows");
            return;
        }
    };
    for row in rows {
        if state.in_flight.len() >= state.args.max_in_flight {
            break;
        }
        let endpoint = row.target.clone().unwrap_or_default();
        let busy = state.per_endpoint.get(&endpoint).copied().unwrap_or(0);
        let stream = (endpoint.clone(), row.verification_id.clone());
        // Rows come oldest first: a stream already busy keeps its later rows for later.
        if state.in_flight.contains(&row.id)
            || busy >= state.args.per_endpoint
            || !state.streams.insert(stream)
        {
            continue;
        }
        state.in_flight.insert(row.id.clone());
        *state.per_endpoint.entry(endpoint.clone()).or_default() += 1;
        let args = state.args.clone();
        let me = myself.clone();
        let span = delivery_span(&row);
        let outage = state.leases_down.clone();
        state.tasks.spawn(
            async move {
                under_lease(&args.common, &row, &outage, deliver(&args, &row)).await;
                let _ = me.cast(WebhookLaneMsg::Done {
                    row: row.id.clone(),
                    endpoint,
                    verification: row.verification_id.clone(),
                });
            }
            .instrument(span),
        );
    }
}

/// One round for one webhook row.
async fn deliver(args: &WebhookLaneArgs, row: &OutboxRow) -> bool {
    let c = &args.common;
    let Some(body) = open_payload(c, row).await else {
        return true;
    };
    let hook = match row.target.as_deref() {
        Some(id) => webhooks::get(&c.db, id).await.ok().flatten(),
        None => None,
    };
    let secret = hook
        .as_ref()
        .and_then(|h| c.blobs.open_text(&h.id, &h.secret).ok());
    let (Some(hook), Some(secret)) = (hook, secret) else {
        let missing = RoundOutcome::Rejected {
            attempts: 0,
            reason: "webhook_missing".into(),
        };
        return record_round(c, row, missing).await;
    };
    let correlation = row.correlation_id.as_deref().and_then(CorrelationId::parse);
    let outcome = args
        .client
        .deliver(
            &hook.id,
            &hook.url,
            &row.id,
            body.as_bytes(),
            secret.as_bytes(),
            correlation.as_ref(),
        )
        .await;
    if outcome == RoundOutcome::BreakerOpen {
        tracing::debug!("webhook endpoint's breaker is open; the row waits");
    }
    record_round(c, row, outcome).await
}
