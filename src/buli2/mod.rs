//! # BULI2
//!
//! The lender's loan system, both ways: the signed wire format ([`signature`]), the outbound
//! client with retries and a circuit breaker ([`client`], [`breaker`]), and a simulator of
//! BULI2's side to run beside FiLot ([`sim`], `filot buli2-sim`). Delivery itself is the
//! OutboxActor's (`crate::actors::outbox`); callbacks arrive at `POST /internal/buli2/callbacks`
//! (`crate::http::buli2`).

pub mod breaker;
pub mod client;
pub mod signature;
pub mod sim;
