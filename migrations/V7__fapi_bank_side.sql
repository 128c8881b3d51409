-- Issue 5, the rest of FAPI 2.0 consent brokering: authorization codes bound to a DPoP key at
-- PAR (RFC 9449 §10).
--
-- A pushed authorization request may carry a DPoP proof (or `dpop_jkt`); the thumbprint of its
-- key is kept with the consent the request creates and with the code issued for it, and the
-- token request must then prove possession of that key. NULL: the code is not bound.
ALTER TABLE consents ADD COLUMN dpop_jkt text;
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt text;
