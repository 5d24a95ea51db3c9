//! Semantic checks that types alone cannot express. Every problem is reported, each naming its
//! key, so an operator fixes a deployment in one round.

use std::net::SocketAddr;

use super::Settings;

impl Settings {
    /// Every setting that must be greater than 0 (a count, a size, a period), by key.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let (l, o, h, w) = (&self.limits, &self.outbox, &self.http, &self.workflow);
        let mut all = vec![
            (
                "auth.max_token_lifetime_secs",
                self.auth.max_token_lifetime_secs,
            ),
            ("limits.upload_timeout_secs", l.upload_timeout_secs),
            ("limits.max_file_bytes", l.max_file_bytes),
            ("limits.max_json_bytes", l.max_json_bytes),
            ("limits.max_image_side", l.max_image_side.into()),
            ("limits.max_image_pixels", l.max_image_pixels),
            (
                "limits.uploads_per_user_per_minute",
                l.uploads_per_user_per_minute.into(),
            ),
            (
                "limits.uploads_per_ip_per_minute",
                l.uploads_per_ip_per_minute.into(),
            ),
            (
                "limits.requests_per_user_per_minute",
                l.requests_per_user_per_minute.into(),
            ),
            (
                "limits.auth_failures_per_ip_per_minute",
                l.auth_failures_per_ip_per_minute.into(),
            ),
            ("limits.max_page_size", l.max_page_size.into()),
            (
                "limits.max_concurrent_uploads",
                l.max_concurrent_uploads.into(),
            ),
            (
                "limits.max_active_verifications_per_user",
                l.max_active_verifications_per_user.into(),
            ),
            ("http.header_read_timeout_secs", h.header_read_timeout_secs),
            ("http.idle_timeout_secs", h.idle_timeout_secs),
            ("http.body_read_timeout_secs", h.body_read_timeout_secs),
            ("documents.actor_idle_secs", self.documents.actor_idle_secs),
            (
                "documents.actor_call_timeout_ms",
                self.documents.actor_call_timeout_ms,
            ),
            ("ocr.batch_lines", self.ocr.batch_lines as u64),
            ("ocr.poll_ms", self.ocr.poll_ms),
            ("ocr.job_deadline_secs", self.ocr.job_deadline_secs),
            ("ocr.max_attempts", self.ocr.max_attempts.into()),
            ("ocr.reaper_poll_ms", self.ocr.reaper_poll_ms),
            ("ocr.restart_window_secs", self.ocr.restart_window_secs),
            ("redis.pool_size", self.redis.pool_size.into()),
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("redis.lease_ttl_ms", self.redis.lease_ttl_ms),
            ("outbox.poll_ms", o.poll_ms),
            ("outbox.timeout_secs", o.timeout_secs),
            ("outbox.attempts", o.attempts.into()),
            ("outbox.max_rounds", o.max_rounds.into()),
            ("outbox.breaker_failures", o.breaker_failures.into()),
            ("outbox.callback_window_secs", o.callback_window_secs),
            ("outbox.webhook_timeout_secs", o.webhook_timeout_secs),
            (
                "outbox.webhook_concurrency_per_endpoint",
                o.webhook_concurrency_per_endpoint.into(),
            ),
            (
                "outbox.webhook_max_in_flight",
                o.webhook_max_in_flight.into(),
            ),
            (
                "outbox.webhook_breaker_failures",
                o.webhook_breaker_failures.into(),
            ),
            (
                "outbox.webhook_resolve_timeout_ms",
                o.webhook_resolve_timeout_ms,
            ),
            ("workflow.review_sla_hours", w.review_sla_hours),
            ("workflow.poll_ms", w.poll_ms),
            ("workflow.actor_idle_secs", w.actor_idle_secs),
            ("workflow.restart_window_secs", w.restart_window_secs),
            (
                "documents.restart_window_secs",
                self.documents.restart_window_secs,
            ),
            (
                "supervision.restart_window_secs",
                self.supervision.restart_window_secs,
            ),
        ];
        if self.metrics.emf_enabled {
            all.push(("metrics.emf_interval_secs", self.metrics.emf_interval_secs));
        }
        all
    }

    /// Semantic checks that types alone cannot express.
    pub fn validate(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .counts()
            .into_iter()
            .filter(|(_, value)| *value == 0)
            .map(|(key, _)| format!("{key}: must be greater than 0"))
            .collect();
        if self.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "listen: `{}` is not a socket address (e.g. 127.0.0.1:8080)",
                self.listen
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir: must not be empty".into());
        }
        let url = self.database_url.expose().trim();
        let known_scheme = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| url.starts_with(p));
        if !url.is_empty() && !known_scheme {
            p.push("database_url: must start with sqlite:, postgres:// or postgresql://".into());
        }
        if self.database.max_connections == 0 {
            p.push("database.max_connections: must be at least 1".into());
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            p.push("auth.jwt_secret: must be at least 32 characters".into());
        }
        if self.auth.issuer.trim().is_empty() {
            p.push("auth.issuer: must not be empty".into());
        }
        if self.auth.audience.trim().is_empty() {
            p.push("auth.audience: must not be empty".into());
        }
        if let Some(path) = &self.auth.jwt_public_key_file
            && !path.exists()
        {
            p.push(format!(
                "auth.jwt_public_key_file: {} does not exist",
                path.display()
            ));
        }
        if let Some(key) = &self.blobs.encryption_key {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(key.expose().trim()) {
                Ok(bytes) if bytes.len() == 32 => {}
                _ => p.push("blobs.encryption_key: must be base64 of exactly 32 bytes".into()),
            }
        }
        let l = &self.limits;
        for proxy in &l.trusted_proxies {
            let net = proxy.parse::<ipnet::IpNet>().is_ok();
            if !net && proxy.parse::<std::net::IpAddr>().is_err() {
                p.push(format!(
                    "limits.trusted_proxies: `{proxy}` is not an address or CIDR (e.g. 10.0.0.0/8)"
                ));
            }
        }
        let m = &self.metrics;
        if !m.listen.is_empty() && m.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "metrics.listen: `{}` is not a socket address (e.g. 127.0.0.1:9464)",
                m.listen
            ));
        }
        if let Some(token) = &m.token
            && token.expose().len() < 16
        {
            p.push("metrics.token: must be at least 16 characters".into());
        }
        if l.max_request_bytes < l.max_file_bytes {
            p.push("limits.max_request_bytes: must be at least limits.max_file_bytes".into());
        }
        for device in &self.ocr.devices {
            if crate::gpu::parse_device(device).is_err() {
                p.push(format!("ocr.devices: `{device}` is not available in this build (cpu; cuda:N with --features cuda)"));
            }
        }
        if let Some(url) = &self.redis_url {
            let u = url.expose().trim();
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                p.push("redis_url: must be a redis:// or rediss:// URL".into());
            }
        }
        if let Some(url) = &self.buli2_url {
            let u = url.trim();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                p.push("buli2_url: must be an http:// or https:// URL".into());
            }
            match &self.buli2_secret {
                None => p.push(
                    "buli2_secret: required when buli2_url is set (FiLot never fails open)".into(),
                ),
                Some(s) if s.expose().len() < 16 => {
                    p.push("buli2_secret: must be at least 16 characters".into())
                }
                Some(_) => {}
            }
        }
        let w = &self.workflow;
        if !(1..=crate::kyc::workflow::CURRENT_VERSION).contains(&w.version) {
            p.push(format!(
                "workflow.version: must be between 1 and {}",
                crate::kyc::workflow::CURRENT_VERSION
            ));
        }
        if w.approve_at > 100 || w.reject_below > w.approve_at {
            p.push(
                "workflow.approve_at / reject_below: need 0 <= reject_below <= approve_at <= 100"
                    .into(),
            );
        }
        if !self.node.name.contains('@') {
            p.push(format!(
                "node.name: `{}` must look like name@host",
                self.node.name
            ));
        }
        for role in &self.node.roles {
            if !["api", "ocr", "outbox"].contains(&role.as_str()) {
                p.push(format!(
                    "node.roles: unknown role `{role}` (api, ocr, outbox)"
                ));
            }
        }
        if !self.cluster.peers.is_empty() && self.cluster.cookie.is_none() {
            p.push("cluster.cookie: required when cluster.peers is not empty".into());
        }
        p
    }
}
