//! Integration tests: the real service on 127.0.0.1:0, spoken to over HTTP.

mod abuse;
mod actors;
mod auth;
mod batches;
mod buli2;
mod console;
mod db_outage;
mod documents;
mod errors;
mod four_eyes;
mod helpers;
mod intake;
mod metrics;
mod pipeline;
mod reaper;
mod redis;
mod slow_clients;
#[path = "../support/mod.rs"]
mod support;
mod swagger;
mod webhooks;
mod workflow;
mod workflow_ocr;
