-- Blind indexes: keyed HMAC-SHA256 (key derived from the blob key), never a plain value or a
-- plain hash of one. See src/store/blind.rs.

-- The file's index replaces its plain SHA-256: a plain digest of an identity card is
-- personal data that anyone can match. Old digests cannot be made blind: they go.
ALTER TABLE documents RENAME COLUMN sha256 TO file_index;
UPDATE documents SET file_index = NULL;

-- Readings kept for a repeated upload: the index of (file, owner, type, reading engine) ->
-- the document whose sealed reading answers it. Erasing that document removes its entries.
CREATE TABLE reading_cache (
    cache_key   TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX reading_cache_document ON reading_cache (document_id);

-- Every NIK and NPWP a verification's documents yielded, as its blind index: to find the
-- same number used by another account. Erasing the document removes its entries.
CREATE TABLE identity_index (
    kind            TEXT NOT NULL,
    value_index     TEXT NOT NULL,
    verification_id TEXT NOT NULL,
    document_id     TEXT NOT NULL,
    owner           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (kind, value_index, verification_id)
);
CREATE INDEX identity_index_verification ON identity_index (verification_id);
CREATE INDEX identity_index_document ON identity_index (document_id);
