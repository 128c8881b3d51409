-- The daily payment limit counts what bankgate let move money: a payment is counted against
-- its user's day (`counted_at`) when it is sent on its way at the bank — the payment created
-- for the user to authorise where authorising it executes it (Berlin Group, STET), the
-- submission otherwise (OBIE) — under a per-user lock, so that concurrent payments never
-- count past the limit and payments only pushed, or declined, count nothing.
ALTER TABLE payments ADD COLUMN counted_at timestamptz;

-- Payments recorded before this version counted from their creation: they keep counting.
UPDATE payments SET counted_at = created_at WHERE submission <> 'refused';

DROP INDEX payments_spent;
-- The daily limit: one user's counted payments through one platform in one currency and day.
CREATE INDEX payments_counted ON payments (client_id, user_ref, currency, counted_at)
    WHERE counted_at IS NOT NULL;
