-- Purpose policies: where each platform processes data, and the unattended-access budgets.

-- Where a registered client processes the data it receives (a policy lists the regions it
-- allows; PAR refuses a platform outside them). Existing clients are taken to process in the EEA.
ALTER TABLE clients
    ADD COLUMN region text NOT NULL DEFAULT 'EEA';

-- Unattended accesses per consent and UTC day (the purpose's `max_unattended_per_day`),
-- shared by every gateway instance. `Store::count_access` moves a row with one atomic upsert.
-- Rows of past days are history only; nothing reads them.
CREATE TABLE access_counts (
    consent_id text   NOT NULL,
    day        date   NOT NULL,
    -- A u32 in Rust: bigint holds every value.
    used       bigint NOT NULL CHECK (used BETWEEN 1 AND 4294967295),
    PRIMARY KEY (consent_id, day)
);
