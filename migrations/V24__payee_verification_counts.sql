-- Verification of payee: the verifications each platform asked per UTC minute, so that every
-- instance counts against one limit (the endpoint must not serve to enumerate account
-- holders). A row per platform and minute; the counting statement forgets earlier minutes.
CREATE TABLE payee_verification_counts (
    client_id    text        COLLATE "C" NOT NULL,
    window_start timestamptz NOT NULL,
    used         integer     NOT NULL CHECK (used > 0),
    PRIMARY KEY (client_id, window_start)
);
