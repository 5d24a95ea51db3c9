-- OCR jobs and leases (issue 6).
-- A claim records who runs the job, until when, and which attempt it is; `fence` is the
-- fencing token of the lease the last claimant held. A write carrying an older token than the
-- row's is refused, so a node that lost its lease cannot overwrite newer work.
ALTER TABLE documents ADD COLUMN ocr_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN ocr_deadline BIGINT;
ALTER TABLE documents ADD COLUMN ocr_node TEXT;
ALTER TABLE documents ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
CREATE INDEX documents_status_deadline ON documents (status, ocr_deadline);

-- Verifications carry the token of the lease held by their last writer.
ALTER TABLE verifications ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
