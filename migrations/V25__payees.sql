-- The payee directory: the handles each platform registered for its users' payee consents
-- (`p2p-payments-payee-check`), each pointing at one account of its consent by the
-- platform-private account id. A handle is unique within its platform; it goes with its
-- consent when the consent is deleted, and is not resolved once the consent ended.
CREATE TABLE payees (
    client_id  text        COLLATE "C" NOT NULL,
    handle     text        COLLATE "C" NOT NULL,
    consent_id text        NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    account_id text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, handle)
);

CREATE INDEX payees_consent ON payees (consent_id);
