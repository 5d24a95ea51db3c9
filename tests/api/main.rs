//! Integration tests: the real service on 127.0.0.1:0, spoken to over HTTP.

mod actors;
mod auth;
mod buli2;
mod db_outage;
mod documents;
mod errors;
mod helpers;
mod intake;
mod metrics;
mod pipeline;
mod reaper;
mod redis;
#[path = "../support/redis.rs"]
mod redis_server;
mod webhooks;
mod workflow;
mod workflow_ocr;
