-- Client keys by reference, and registration management (RFC 7592).

ALTER TABLE clients
    -- Where the client publishes its JWK Set (RFC 7591 `jwks_uri`), instead of `jwks`: fetched
    -- through the egress policy, cached, and fetched again for an unknown `kid`.
    ADD COLUMN jwks_uri text,
    -- The digest of the client's registration access token (RFC 7592), as `secret_hash` holds
    -- its secret's; empty when none was issued.
    ADD COLUMN registration_token_hash text NOT NULL DEFAULT '',
    -- RFC 7591 §2: a client's keys come by value or by reference, never both.
    ADD CONSTRAINT clients_one_key_source CHECK (jwks IS NULL OR jwks_uri IS NULL);
