-- bankgate core schema: clients, bank manifests, the OAuth flow's short-lived rows, consents,
-- sealed bank grants, account references and the audit log.
--
-- Forward-only: change the schema with a new V{n}__*.sql, never by editing this file
-- (refinery refuses to run against a database whose applied checksum differs).
--
-- Rows of different aggregates do not reference each other with foreign keys: the in-memory
-- store has the same semantics, and banks and clients may come from configuration.

-- Registered OAuth clients of bankgate (platforms, compliance officers).
CREATE TABLE clients (
    client_id        text        PRIMARY KEY,
    name             text        NOT NULL,
    -- Argon2id PHC string; the secret itself is never stored.
    secret_hash      text        NOT NULL,
    role             text        NOT NULL CHECK (role IN ('platform', 'compliance')),
    -- Exact redirect URIs, compared byte for byte.
    redirect_uris    text[]      NOT NULL,
    allowed_purposes text[]      NOT NULL,
    created_at       timestamptz NOT NULL
);

-- One row per bank; its row lock serialises concurrent manifest updates.
CREATE TABLE banks (
    bank_id    text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every version of every bank's adapter manifest; the active one is the highest version.
CREATE TABLE bank_versions (
    bank_id    text        NOT NULL REFERENCES banks (bank_id),
    version    integer     NOT NULL CHECK (version >= 1),
    manifest   jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (bank_id, version)
);

-- Pushed authorization requests (RFC 9126): deleted when used.
CREATE TABLE pushed_requests (
    request_uri text        PRIMARY KEY,
    client_id   text        NOT NULL,
    request     jsonb       NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE consents (
    id             text        PRIMARY KEY,
    client_id      text        NOT NULL,
    bank_id        text        NOT NULL,
    purpose        text        NOT NULL,
    scopes         text[]      NOT NULL,
    -- A u32 in Rust: bigint holds every value.
    history_days   bigint      NOT NULL CHECK (history_days BETWEEN 0 AND 4294967295),
    user_ref       text        NOT NULL,
    status         text        NOT NULL CHECK (status IN (
                       'awaiting_authorisation', 'authorised', 'rejected', 'revoked', 'expired')),
    policy_hash    text        NOT NULL,
    redirect_uri   text        NOT NULL,
    state          text,
    code_challenge text        NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    -- When the status last changed (operations only; not part of the record).
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- `GET /v1/consents?user_ref=…` lists one platform's consents for one user.
CREATE INDEX consents_client_user ON consents (client_id, user_ref);

-- Users sent to their bank who have not come back yet, keyed by `state`: deleted when used.
CREATE TABLE bank_authorizations (
    state            text        PRIMARY KEY,
    consent_id       text        NOT NULL,
    bank_id          text        NOT NULL,
    -- The PKCE verifier, sealed.
    pkce_key_id      text        NOT NULL,
    pkce_nonce       bytea       NOT NULL,
    pkce_ciphertext  bytea       NOT NULL,
    bank_consent_id  text,
    expires_at       timestamptz NOT NULL
);

-- The bank's tokens for a consent, sealed (AEAD; key id for rotation).
CREATE TABLE bank_grants (
    consent_id text        PRIMARY KEY,
    key_id     text        NOT NULL,
    nonce      bytea       NOT NULL,
    ciphertext bytea       NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Authorization codes issued to platforms, by SHA-256 of the code. Kept after use so that a
-- replay is recognised as one.
CREATE TABLE authorization_codes (
    code_hash      text        PRIMARY KEY,
    consent_id     text        NOT NULL,
    client_id      text        NOT NULL,
    redirect_uri   text        NOT NULL,
    code_challenge text        NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);

-- The opaque account ids a platform sees under a consent, and the bank's reference for each.
CREATE TABLE account_refs (
    consent_id text NOT NULL,
    account_id text NOT NULL,
    bank_ref   text NOT NULL,
    PRIMARY KEY (consent_id, account_id)
);

-- The audit log: one row per event, a hash chain over `canonical`.
-- h_n = SHA-256(h_{n-1} ‖ n ‖ canonical_n). The typed columns repeat what `canonical` says so
-- that compliance queries can filter; readers check that both agree.
-- A plain table for now (monthly partitions come later); no foreign keys from it.
CREATE TABLE audit_events (
    position    bigint      PRIMARY KEY CHECK (position >= 1),
    id          text        NOT NULL UNIQUE,
    time        timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    platform    text,
    bank        text,
    consent     text,
    user_ref    text,
    purpose     text,
    policy_hash text,
    categories  text[]      NOT NULL,
    fields      text[]      NOT NULL,
    -- A u32 in Rust: bigint holds every value.
    n_records   bigint      NOT NULL CHECK (n_records BETWEEN 0 AND 4294967295),
    decision    text        NOT NULL CHECK (decision IN ('allow', 'deny', 'error')),
    reason      text,
    request_id  text,
    prev_hash   bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    -- Exactly the bytes the chain hashed (`Event::canonical_bytes`, compact JSON).
    canonical   bytea       NOT NULL
);

-- Compliance filters page by position (keyset), so each index ends with it.
CREATE INDEX audit_events_platform ON audit_events (platform, position);
CREATE INDEX audit_events_consent ON audit_events (consent, position);
CREATE INDEX audit_events_purpose ON audit_events (purpose, position);
CREATE INDEX audit_events_decision ON audit_events (decision, position);
CREATE INDEX audit_events_time ON audit_events (time);

-- Chained rows are never changed or removed. The application's role should also lack UPDATE,
-- DELETE and TRUNCATE on the table; this trigger stops everyone else short of a superuser who
-- disables it on purpose.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
