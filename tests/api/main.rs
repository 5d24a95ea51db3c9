//! Integration tests: the real service on 127.0.0.1:0, spoken to over HTTP.

mod abuse;
mod actors;
mod auth;
mod buli2;
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
#[path = "../support/redis.rs"]
mod redis_server;
mod slow_clients;
mod webhooks;
mod workflow;
mod workflow_ocr;
