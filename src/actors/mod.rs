//! # Actors
//!
//! The actors that own a piece of state each: one file per actor, holding its behaviour, its
//! message enum, its state and its arguments. Actors are caches over the database (the truth):
//! any of them may die at any time and is rebuilt from the database. Supervisors live in
//! `crate::supervision`, not here: this module never reaches into them. The keyed-actor
//! protocol (`keyed`) and the handles into the actors (`handles`) are here, so the supervisors
//! use them and not the other way round.

pub mod challenger;
pub mod document;
pub mod handles;
pub mod intake;
pub mod keyed;
pub mod ocr;
pub mod outbox;
pub mod verification;
pub mod webhook_lane;
pub mod workflow_driver;

pub use document::{DocumentActor, DocumentContext, DocumentError, DocumentMsg};
pub use handles::{Documents, PoolSlot, Verifications};
