//! Semantic checks that types alone cannot express. Every problem is reported, each naming its
//! key, so an operator fixes a deployment in one round.

use std::{net::SocketAddr, time::Duration};

use super::Settings;

impl Settings {
    /// Every count or size that must be greater than 0, by key.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let (l, o) = (&self.limits, &self.outbox);
        vec![
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
            ("ocr.batch_lines", self.ocr.batch_lines as u64),
            ("ocr.max_attempts", self.ocr.max_attempts.into()),
            ("redis.pool_size", self.redis.pool_size.into()),
            ("outbox.attempts", o.attempts.into()),
            ("outbox.max_rounds", o.max_rounds.into()),
            ("outbox.breaker_failures", o.breaker_failures.into()),
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
        ]
    }

    /// Every period that must be longer than 0, by key.
    fn periods(&self) -> Vec<(&'static str, Duration)> {
        let (l, o, h, w) = (&self.limits, &self.outbox, &self.http, &self.workflow);
        let mut all = vec![
            ("auth.max_token_lifetime", self.auth.max_token_lifetime),
            ("limits.upload_timeout", l.upload_timeout),
            ("http.header_read_timeout", h.header_read_timeout),
            ("http.idle_timeout", h.idle_timeout),
            ("http.body_read_timeout", h.body_read_timeout),
            ("documents.actor_idle", self.documents.actor_idle),
            (
                "documents.actor_call_timeout",
                self.documents.actor_call_timeout,
            ),
            ("ocr.poll_interval", self.ocr.poll_interval),
            ("ocr.job_deadline", self.ocr.job_deadline),
            ("ocr.reaper_poll_interval", self.ocr.reaper_poll_interval),
            ("ocr.restart_window", self.ocr.restart_window),
            ("redis.timeout", self.redis.timeout),
            ("redis.lease_ttl", self.redis.lease_ttl),
            ("outbox.poll_interval", o.poll_interval),
            ("outbox.timeout", o.timeout),
            ("outbox.callback_window", o.callback_window),
            ("outbox.webhook_timeout", o.webhook_timeout),
            ("outbox.webhook_resolve_timeout", o.webhook_resolve_timeout),
            ("workflow.review_sla", w.review_sla),
            ("workflow.poll_interval", w.poll_interval),
            ("workflow.actor_idle", w.actor_idle),
            ("workflow.restart_window", w.restart_window),
            ("documents.restart_window", self.documents.restart_window),
            (
                "supervision.restart_window",
                self.supervision.restart_window,
            ),
        ];
        if self.metrics.emf_enabled {
            all.push(("metrics.emf_interval", self.metrics.emf_interval));
        }
        all
    }

    /// Periods that travel as whole seconds (HTTP `Retry-After`, JWT claims, signed callback
    /// timestamps): a fraction of a second would be cut off, so it is refused.
    fn whole_seconds(&self) -> [(&'static str, Duration); 4] {
        [
            (
                "limits.upload_busy_retry_after",
                self.limits.upload_busy_retry_after,
            ),
            ("auth.leeway", self.auth.leeway),
            ("auth.max_token_lifetime", self.auth.max_token_lifetime),
            ("outbox.callback_window", self.outbox.callback_window),
        ]
    }

    /// Semantic checks that types alone cannot express.
    pub fn validate(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .counts()
            .into_iter()
            .filter(|(_, value)| *value == 0)
            .map(|(key, _)| format!("{key}: must be greater than 0"))
            .collect();
        for (key, _) in self.periods().into_iter().filter(|(_, d)| d.is_zero()) {
            p.push(format!("{key}: must be longer than 0s"));
        }
        for (key, d) in self.whole_seconds() {
            if d.subsec_nanos() != 0 {
                p.push(format!("{key}: must be whole seconds (e.g. \"2s\")"));
            }
        }
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
        let c = &self.ocr.challenger;
        if c.share_percent > 100 {
            p.push("ocr.challenger.share_percent: at most 100".into());
        }
        if !c.device.trim().is_empty() && crate::gpu::parse_device(&c.device).is_err() {
            p.push(format!(
                "ocr.challenger.device: `{}` is not available in this build",
                c.device
            ));
        }
        for (path, sum, key) in [
            (&c.det_weights, &c.det_weights_sha256, "det_weights_sha256"),
            (&c.rec_weights, &c.rec_weights_sha256, "rec_weights_sha256"),
        ] {
            let hex = sum.trim();
            if !path.trim().is_empty()
                && (hex.len() != 64 || !hex.chars().all(|ch| ch.is_ascii_hexdigit()))
            {
                p.push(format!(
                    "ocr.challenger.{key}: the file's SHA-256, 64 hex digits"
                ));
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
        let c = &self.cluster;
        if !c.peers.is_empty() && c.cookie.is_none() {
            p.push("cluster.cookie: required when cluster.peers is not empty".into());
        }
        if !c.listen.is_empty() {
            if c.listen.parse::<SocketAddr>().is_err() {
                p.push(format!(
                    "cluster.listen: `{}` is not a socket address (e.g. 127.0.0.1:4370)",
                    c.listen
                ));
            }
            if c.cookie.is_none() {
                p.push("cluster.cookie: required when cluster.listen is set".into());
            }
        } else if !c.peers.is_empty() {
            p.push("cluster.listen: required when cluster.peers is not empty".into());
        }
        for peer in &c.peers {
            if super::PeerAddr::parse(peer).is_none() {
                p.push(format!(
                    "cluster.peers: `{peer}` must look like name@host:port"
                ));
            }
        }
        if c.heartbeat_deadline <= c.heartbeat_interval {
            p.push("cluster.heartbeat_deadline: must be longer than heartbeat_interval".into());
        }
        if c.max_frame_bytes < self.limits.max_file_bytes + 64 * 1024 {
            p.push(format!(
                "cluster.max_frame_bytes: must exceed limits.max_file_bytes ({}) by 64 KiB: a card travels in one frame",
                self.limits.max_file_bytes
            ));
        }
        let t = &c.tls;
        let set = [&t.cert, &t.key, &t.ca]
            .iter()
            .filter(|v| !v.is_empty())
            .count();
        if set != 0 && set != 3 {
            p.push("cluster.tls: cert, key and ca go together (PEM files)".into());
        }
        for (key, path) in [("cert", &t.cert), ("key", &t.key), ("ca", &t.ca)] {
            if !path.is_empty() && !std::path::Path::new(path).is_file() {
                p.push(format!("cluster.tls.{key}: no file at `{path}`"));
            }
        }
        let roles = &self.node.roles;
        if roles.is_empty() {
            p.push("node.roles: at least one of api, ocr, outbox".into());
        }
        if !roles.iter().any(|r| r == "api") && c.listen.is_empty() {
            p.push("node.roles: a node without `api` works for others over the cluster: set cluster.listen".into());
        }
        if roles.iter().any(|r| r == "outbox") && !roles.iter().any(|r| r == "api") {
            p.push(
                "node.roles: `outbox` delivers from the database, which only `api` nodes open"
                    .into(),
            );
        }
        p
    }
}
