//! # BULI2
//!
//! Outbound HTTP, and the lender's loan system both ways: the signed wire format
//! ([`signature`]), delivery rounds with retries and a circuit breaker ([`client`],
//! [`breaker`]), status webhooks to clients' own endpoints ([`webhook`]) and the rule for where
//! a client-chosen URL may point ([`egress`]), and a simulator of BULI2's side to run beside
//! FiLot ([`sim`], `filot buli2-sim`). Delivery itself is the outbox lanes'
//! (`crate::actors::outbox`, `crate::actors::webhook_lane`); callbacks arrive at
//! `POST /internal/buli2/callbacks` (`crate::http::buli2`). Nothing here touches the database.

pub mod breaker;
pub mod client;
pub mod egress;
pub mod signature;
pub mod sim;
pub mod webhook;
