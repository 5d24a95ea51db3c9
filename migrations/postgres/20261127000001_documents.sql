-- Documents: one row per upload. Personal data lives only in the encrypted blob and in
-- fields_json; both are wiped on erasure, the row stays as a tombstone.
CREATE TABLE documents (
    id             TEXT PRIMARY KEY NOT NULL,
    owner          TEXT NOT NULL,
    doc_type       TEXT NOT NULL,
    status         TEXT NOT NULL,
    content_type   TEXT,
    size_bytes     BIGINT,
    sha256         TEXT,
    blob_key       TEXT,
    fields_json    TEXT,
    issues_json    TEXT,
    failure_reason TEXT,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    erased_at      BIGINT
);
CREATE INDEX documents_owner_created ON documents (owner, created_at DESC, id DESC);
CREATE INDEX documents_status ON documents (status);

-- Append-only history of every change to a document, gap-free per document.
CREATE TABLE document_events (
    document_id TEXT NOT NULL REFERENCES documents (id),
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (document_id, seq)
);

-- Idempotency-Key memory for uploads: same owner + key + body answers the same response.
CREATE TABLE idempotency_keys (
    owner         TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    status_code   BIGINT NOT NULL,
    response_body TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
