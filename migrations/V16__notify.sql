-- Notifications: platforms' subscriptions, the refresh queue, and what change detection keeps
-- per account (keyed hashes only, never the data itself).

-- A platform's subscription: one consent (`consent_id`), or every consent of the platform
-- for one purpose (`consent_id` NULL, `purpose` set).
CREATE TABLE notify_subscriptions (
    id          text        PRIMARY KEY,
    client_id   text        NOT NULL,
    consent_id  text,
    purpose     text        NOT NULL,
    events      text[]      NOT NULL,
    mode        text        NOT NULL CHECK (mode IN ('thin', 'data')),
    created_at  timestamptz NOT NULL,
    CHECK (cardinality(events) > 0)
);

CREATE INDEX notify_subscriptions_consent ON notify_subscriptions (consent_id);
CREATE INDEX notify_subscriptions_purpose ON notify_subscriptions (client_id, purpose)
    WHERE consent_id IS NULL;

-- The refresh queue: one job per subscribed consent. A claimed job's `due_at` is pushed to
-- the end of its lease, so a crashed instance's job is due again when the lease runs out.
CREATE TABLE notify_jobs (
    consent_id  text        PRIMARY KEY,
    due_at      timestamptz NOT NULL,
    failures    integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error  text
);

CREATE INDEX notify_jobs_due ON notify_jobs (due_at);

-- Per account of a consent: the keyed hash of its balance set as last seen (NULL: seen
-- without reading balances), and how many times it changed (the generation names each
-- change, so that an announcement is enqueued once even when a refresh is repeated).
CREATE TABLE notify_accounts (
    consent_id     text        NOT NULL,
    account_id     text        NOT NULL,
    balance_digest text,
    generation     bigint      NOT NULL CHECK (generation >= 0),
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (consent_id, account_id)
);

-- Transactions already seen on an account, pseudonymised: the keyed hash of the bank's id
-- and the keyed hash of its matching key (amount, currency, date, counterparty, reference),
-- which finds a booked transaction announced while it was pending under another id.
CREATE TABLE notify_seen (
    consent_id  text        NOT NULL,
    account_id  text        NOT NULL,
    pseudonym   text        NOT NULL,
    match_key   text        NOT NULL,
    seen_at     timestamptz NOT NULL,
    PRIMARY KEY (consent_id, account_id, pseudonym)
);

CREATE INDEX notify_seen_match ON notify_seen (consent_id, account_id, match_key);
