-- The person who authorised a consent, as their bank knows them: the `sub` of the bank's
-- OpenID Connect ID token, kept only as a keyed digest (HMAC-SHA-256 under a key derived from
-- the grant key, with the bank id: `Sealer::bank_person`), so that the person's connected-apps
-- page and a subject report by bank and person find every consent the person gave through
-- bankgate at that bank, across platforms, without the bank's identifier being stored.
ALTER TABLE consents ADD COLUMN bank_person TEXT;

CREATE INDEX consents_bank_person ON consents (bank_id, bank_person)
    WHERE bank_person IS NOT NULL;
