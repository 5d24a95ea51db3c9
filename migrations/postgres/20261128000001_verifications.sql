-- KYC verifications (the review workflow). The row is a projection for queries; the truth is
-- the append-only event log, which the VerificationActor replays.
CREATE TABLE verifications (
    id               TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL,
    ktp_document_id  TEXT NOT NULL REFERENCES documents (id),
    npwp_document_id TEXT REFERENCES documents (id),
    state            TEXT NOT NULL,
    workflow_version BIGINT NOT NULL,
    score            BIGINT,
    reasons_json     TEXT,
    review_id        TEXT,
    delivery_state   TEXT NOT NULL,
    corrections      TEXT,
    version          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    decided_at       BIGINT
);
CREATE INDEX verifications_state_created ON verifications (state, created_at, id);
CREATE INDEX verifications_owner_created ON verifications (owner, created_at DESC);

-- Gap-free per verification: seq = the row's version after the event.
CREATE TABLE verification_events (
    verification_id TEXT NOT NULL REFERENCES verifications (id),
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    actor           TEXT NOT NULL,
    detail          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (verification_id, seq)
);

-- Signals already applied: the same signal id answers the same result, once.
CREATE TABLE verification_signals (
    verification_id TEXT NOT NULL REFERENCES verifications (id),
    signal_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (verification_id, signal_id)
);

-- Durable timers (review SLA); fired_at is set in the transaction that acts on them.
CREATE TABLE workflow_timers (
    id              TEXT PRIMARY KEY NOT NULL,
    verification_id TEXT NOT NULL REFERENCES verifications (id),
    kind            TEXT NOT NULL,
    due_at          BIGINT NOT NULL,
    fired_at        BIGINT
);
CREATE INDEX workflow_timers_due ON workflow_timers (fired_at, due_at);

-- Transactional outbox: written with the decision, delivered to BULI2 by the OutboxActor.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    verification_id TEXT NOT NULL REFERENCES verifications (id),
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    rounds          BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX outbox_state_next ON outbox (state, next_attempt_at);
