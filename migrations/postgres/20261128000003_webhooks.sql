-- Status webhooks: a client's URL notified of every state change of its verifications.
-- The HMAC secret is stored sealed (AES-256-GCM) and shown to the client only once.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    active     BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner, active);

-- Which webhook an outbox row is for (NULL for BULI2 decisions).
ALTER TABLE outbox ADD COLUMN target TEXT;
