-- Payment initiation: one row per payment (recorded before its bank is called) and the
-- platforms' idempotency keys (scoped to the platform, kept at least 24 hours).

CREATE TABLE payments (
    -- `pay_…`: also the end-to-end id and the idempotency value sent to the bank.
    id                 text        PRIMARY KEY,
    client_id          text        NOT NULL,
    -- One payment per consent: a second submission under a used consent is a unique violation.
    consent_id         text        NOT NULL UNIQUE,
    bank_id            text        NOT NULL,
    -- Copied from the request for the daily limit (`spent_on`).
    user_ref           text        NOT NULL,
    currency           text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount             numeric     NOT NULL CHECK (amount > 0),
    -- The platform's `payment_initiation` detail, as validated.
    request            jsonb       NOT NULL,
    submission         text        NOT NULL CHECK (submission IN (
                           'recorded', 'in_doubt', 'submitted', 'refused')),
    bank_payment_id    text,
    -- The canonical status (`payments::PaymentStatus`), the rejection reason with it, and the
    -- bank's raw status and reason codes; all NULL until the bank gave a status.
    status             text        CHECK (status IN ('received', 'accepted',
                           'settlement_in_process', 'settled', 'pending', 'rejected', 'cancelled')),
    rejection_reason   text,
    status_raw         text,
    status_reason_code text,
    created_at         timestamptz NOT NULL,
    -- Compare-and-set token: every update names the value it read.
    updated_at         timestamptz NOT NULL,
    -- When the status job next asks the bank; NULL once final.
    next_poll_at       timestamptz,
    polls              integer     NOT NULL DEFAULT 0 CHECK (polls >= 0),
    CHECK ((status IS NULL) = (status_raw IS NULL)),
    CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL))
);

-- The status job's due list (`FOR UPDATE SKIP LOCKED`).
CREATE INDEX payments_due ON payments (next_poll_at) WHERE next_poll_at IS NOT NULL;
-- The daily limit: one user's payments through one platform in one currency and day.
CREATE INDEX payments_spent ON payments (client_id, user_ref, currency, created_at);

-- A platform's `Idempotency-Key` on `POST /v1/payments`.
CREATE TABLE payment_idempotency_keys (
    client_id       text        NOT NULL,
    key             text        NOT NULL,
    -- SHA-256 of the first request's canonical body.
    fingerprint     text        NOT NULL,
    payment_id      text        NOT NULL,
    -- The response the first request got; NULL while it is in flight.
    response_status integer     CHECK (response_status BETWEEN 100 AND 599),
    response_body   jsonb,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (client_id, key),
    CHECK ((response_status IS NULL) = (response_body IS NULL))
);

-- Purging keys past their retention.
CREATE INDEX payment_idempotency_keys_created ON payment_idempotency_keys (created_at);
