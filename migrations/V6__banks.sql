-- Banks register their own adapters: a client with role `bank` is bound to the one bank whose
-- adapter it may register and update (`PUT /v1/banks/{bank_id}/adapter`). Manifest versions
-- were always kept in `bank_versions`; nothing changes there.

ALTER TABLE clients DROP CONSTRAINT clients_role_check;
ALTER TABLE clients
    ADD CONSTRAINT clients_role_check CHECK (role IN ('platform', 'compliance', 'bank')),
    -- The bank a `bank` client administers; set for exactly those clients.
    ADD COLUMN bank_id text,
    ADD CONSTRAINT clients_bank_binding CHECK ((role = 'bank') = (bank_id IS NOT NULL));

-- Finding the principals of a bank (audits, revocation of a bank's access).
CREATE INDEX clients_bank ON clients (bank_id) WHERE bank_id IS NOT NULL;
