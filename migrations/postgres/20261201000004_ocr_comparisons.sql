-- Challenger models on live traffic. A document the champion read is sampled for the
-- challenger when it is extracted (a `pending` row, in the extraction's transaction); the
-- challenger reads it later, when the champion has nothing waiting, and the row becomes
-- `compared` (or `skipped`: no champion reading to compare). Per field: whether both
-- engines read the same, and each engine's value as a blind index keyed by the document
-- (never a value, never linkable across documents).
CREATE TABLE ocr_comparisons (
    document_id       TEXT PRIMARY KEY,
    state             TEXT NOT NULL,
    doc_type          TEXT NOT NULL,
    champion_ms       BIGINT NOT NULL,
    challenger_ms     BIGINT,
    challenger_engine TEXT,
    outcome           TEXT,
    created_at        BIGINT NOT NULL,
    compared_at       BIGINT
);
CREATE INDEX ocr_comparisons_state ON ocr_comparisons (state, created_at);

CREATE TABLE ocr_comparison_fields (
    document_id      TEXT NOT NULL,
    field            TEXT NOT NULL,
    agree            BIGINT NOT NULL,
    champion_index   TEXT,
    challenger_index TEXT,
    PRIMARY KEY (document_id, field)
);

-- Human ground truth: a value a reviewer's correction set, as the same kind of blind index,
-- for documents that were sampled. Which engine had it right is a join, whichever of the
-- correction and the challenger's reading came first.
CREATE TABLE ocr_ground_truth (
    document_id     TEXT NOT NULL,
    field           TEXT NOT NULL,
    truth_index     TEXT NOT NULL,
    verification_id TEXT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    PRIMARY KEY (document_id, field)
);
