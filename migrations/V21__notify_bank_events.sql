-- Events banks push (UK OBIE event notifications) name the bank-side consent: each refresh job
-- keeps the bank and bank-side consent id of its consent, so that a verified event makes
-- that one job due at once.
ALTER TABLE notify_jobs ADD COLUMN bank_id text, ADD COLUMN bank_consent_id text;

CREATE INDEX notify_jobs_bank_consent ON notify_jobs (bank_id, bank_consent_id)
    WHERE bank_consent_id IS NOT NULL;
