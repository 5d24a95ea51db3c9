-- Reviewer claims: who holds a case waiting for a person, and until when (service clock, ms).
-- The claim itself is an event (claimed / released); these columns mirror the last one taken
-- in the current state so the queue and the view can show it. NULL when none was taken.
ALTER TABLE verifications ADD COLUMN claimed_by TEXT;
ALTER TABLE verifications ADD COLUMN claim_expires_at INTEGER;
-- When the review SLA runs out (the queue shows the time left); NULL outside review.
ALTER TABLE verifications ADD COLUMN sla_due_at INTEGER;
