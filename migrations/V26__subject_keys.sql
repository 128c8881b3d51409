-- Per-person audit pseudonym keys, outside the chain: a platform's user's 32 random bytes,
-- sealed with the grant key (AES-256-GCM, bound to platform and user_ref). The audit log
-- records HMAC-SHA-256(key, user_ref) as the person's pseudonym; erasing the person deletes
-- the row, and with it every way to link their events to them (crypto-shredding).
CREATE TABLE subject_keys (
    platform   text        COLLATE "C" NOT NULL,
    user_ref   text        COLLATE "C" NOT NULL,
    key_id     text        NOT NULL,
    nonce      bytea       NOT NULL,
    ciphertext bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, user_ref)
);

CREATE INDEX subject_keys_user_ref ON subject_keys (user_ref);
