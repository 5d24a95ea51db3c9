-- Batch uploads: one row per accepted POST /v1/batches. The answer given (document ids, the
-- client's part names, refused parts) is kept sealed with the blob key (names are the
-- client's words: they may be personal) and is what GET /v1/batches/{id} and a replay with
-- the same Idempotency-Key read back.
CREATE TABLE batches (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    answer       TEXT NOT NULL,
    idem_key     TEXT,
    request_hash TEXT,
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX batches_idempotency ON batches (owner, idem_key);
