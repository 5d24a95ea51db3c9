-- Security hardening: correlation ids carried through every stage, the four-eyes review's
-- pending proposal, delivery lanes and per-owner quotas.

-- The correlation id of the request that created the row, logged by every later stage and
-- sent to BULI2 and webhooks (never personal data: ids are validated as such).
ALTER TABLE documents ADD COLUMN correlation_id TEXT;
ALTER TABLE verifications ADD COLUMN correlation_id TEXT;
ALTER TABLE outbox ADD COLUMN correlation_id TEXT;

-- Four-eyes review: the first reviewer's decision awaiting a second reviewer (JSON; the
-- corrected values inside are sealed). NULL when none is pending.
ALTER TABLE verifications ADD COLUMN proposal TEXT;

-- Each delivery lane reads its own kind of row.
CREATE INDEX outbox_state_kind_next ON outbox (state, kind, next_attempt_at);

-- One row per owner, updated at the start of every transaction that checks one of the
-- owner's quotas (active verifications, webhooks, storage): the update's row lock makes
-- count-then-insert atomic on Postgres (SQLite serialises writers anyway).
CREATE TABLE owner_locks (
    owner   TEXT PRIMARY KEY NOT NULL,
    touched BIGINT NOT NULL
);
CREATE INDEX verifications_owner_state ON verifications (owner, state);
