-- Appending at COPY speed. The gateway links and hashes a batch itself and loads it by binary
-- COPY (spine, then events) in one transaction that holds the chain lock, and PostgreSQL checks
-- that the batch follows the head before the transaction commits (`audit_check_batch`) —
-- instead of `audit_append` taking arrays apart and inserting row by row with INSERT … SELECT,
-- which cost about 1.7× the server work of COPY for the same rows.
--
-- `audit_append` (V8) stays, for instances of the previous version during a rolling upgrade.

-- Opens an append in the caller's transaction: takes the chain lock (held until the
-- transaction ends), makes the transaction commit asynchronously (the gateway's durability
-- barrier follows, as for `audit_append`), and returns the head and the `chained_at` the batch
-- takes — the database's clock, never behind the head's.
CREATE OR REPLACE FUNCTION audit_begin_append(
    OUT head_position bigint, OUT head_hash bytea, OUT chained_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    head_chained timestamptz;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    -- 'bankgate' in ASCII: `store::pg::audit::APPEND_LOCK_KEY`.
    PERFORM pg_advisory_xact_lock(7089068696032867429);
    -- A statement of its own, after the lock: its snapshot sees every batch committed before.
    SELECT c.position, c.hash, c.chained_at INTO head_position, head_hash, head_chained
        FROM audit_chain c ORDER BY c.position DESC LIMIT 1;
    IF NOT FOUND THEN
        head_position := 0;
        head_hash := '\x0000000000000000000000000000000000000000000000000000000000000000';
    END IF;
    chained_at := greatest(clock_timestamp(), head_chained);
END;
$$;

-- Checks, before its transaction commits, the spine of a batch loaded at
-- `first_position`..`last_position`, in the transaction that holds the chain lock: the batch
-- starts right after the head it was linked to and its positions are exactly
-- `first_position`..`last_position` (the primary key already makes each one unique). Raises
-- otherwise, which aborts the transaction: its COMMIT rolls back and the gateway releases
-- nothing. The hashes are the gateway's (`audit::chain_hash`, over the very bytes COPY stores);
-- `audit verify` and every read check them against the stored bytes.
CREATE OR REPLACE FUNCTION audit_check_batch(first_position bigint, last_position bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n_rows  bigint;
    highest bigint;
BEGIN
    -- Re-entrant for the transaction that holds it; false for any other.
    IF NOT pg_try_advisory_xact_lock(7089068696032867429) THEN
        RAISE EXCEPTION 'audit batch checked without the chain lock';
    END IF;
    -- Both are index look-ups whatever plan is cached: the head (a backward scan of the
    -- primary key) and a bounded range of it (the head before the batch, and the batch).
    SELECT max(c.position) INTO highest FROM audit_chain c;
    SELECT count(*) INTO n_rows FROM audit_chain c
        WHERE c.position BETWEEN first_position - 1 AND last_position;
    IF highest IS DISTINCT FROM last_position
       OR n_rows <> last_position - greatest(first_position - 1, 1) + 1 THEN
        RAISE EXCEPTION 'audit batch % to % does not follow the head', first_position,
            last_position;
    END IF;
END;
$$;

GRANT EXECUTE ON FUNCTION audit_begin_append() TO bankgate_app;
GRANT EXECUTE ON FUNCTION audit_check_batch(bigint, bigint) TO bankgate_app;
