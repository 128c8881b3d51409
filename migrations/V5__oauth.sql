-- FAPI 2.0 consent brokering: client keys and DPoP registration, a replay cache shared by every
-- instance, refresh tokens, issued access tokens (for revocation), and webhook deliveries.

-- How a client authenticates at the token and PAR endpoints, its public keys, whether its
-- access tokens must be DPoP-bound (RFC 9449 §5.2), and where it wants consent webhooks.
ALTER TABLE clients
    ADD COLUMN token_endpoint_auth_method text NOT NULL DEFAULT 'client_secret_basic'
        CHECK (token_endpoint_auth_method IN ('client_secret_basic', 'private_key_jwt')),
    -- A JWK Set of public keys (RFC 7517), validated at registration.
    ADD COLUMN jwks jsonb,
    ADD COLUMN dpop_bound_access_tokens boolean NOT NULL DEFAULT false,
    ADD COLUMN webhook_url text;

-- One-time identifiers seen (client assertion and DPoP proof `jti`s), per scope, until they
-- expire. The primary key makes "seen before?" one atomic INSERT on every instance.
CREATE TABLE seen_jtis (
    scope      text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, jti)
);
CREATE INDEX seen_jtis_expires ON seen_jtis (expires_at);

-- Refresh tokens issued to platforms, by SHA-256 of the token; bound to client and consent and
-- never outliving the consent.
CREATE TABLE refresh_tokens (
    token_hash text        PRIMARY KEY,
    client_id  text        NOT NULL,
    consent_id text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_consent ON refresh_tokens (consent_id);

-- Access tokens issued, by `jti`, so that they can be revoked before they expire (RFC 7009, a
-- replayed authorization code, a revoked consent).
CREATE TABLE access_tokens (
    jti        text        PRIMARY KEY,
    client_id  text        NOT NULL,
    consent_id text,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX access_tokens_consent ON access_tokens (consent_id);

-- Webhook deliveries (consent.revoked, consent.expired, consent.expiring) and their log.
-- `dedupe_key` makes enqueueing idempotent across instances; workers claim due rows with
-- FOR UPDATE SKIP LOCKED and push `next_attempt_at` forward as a lease.
CREATE TABLE webhook_deliveries (
    id              text        PRIMARY KEY,
    client_id       text        NOT NULL,
    event           text        NOT NULL,
    consent_id      text        NOT NULL,
    dedupe_key      text        NOT NULL UNIQUE,
    url             text        NOT NULL,
    -- The signed Security Event Token (RFC 8417) that is POSTed.
    payload         text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_client ON webhook_deliveries (client_id, created_at);

-- The expiry task and `GET /v1/consents?user_ref=` look consents up by status and expiry.
CREATE INDEX consents_authorised_expiry ON consents (expires_at) WHERE status = 'authorised';
