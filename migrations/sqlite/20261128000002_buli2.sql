-- What BULI2 said about a delivered decision (its signed callbacks), once per event id.
CREATE TABLE buli2_callbacks (
    event_id        TEXT PRIMARY KEY NOT NULL,
    verification_id TEXT NOT NULL REFERENCES verifications (id),
    outcome         TEXT NOT NULL,
    received_at     BIGINT NOT NULL
);

ALTER TABLE verifications ADD COLUMN buli2_outcome TEXT;
ALTER TABLE verifications ADD COLUMN loan_reference TEXT;
