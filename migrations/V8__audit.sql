-- The audit log, grown up: monthly partitions, the chain's spine (one row per position, so that
-- PostgreSQL itself keeps positions unique), signed checkpoints, archives of expired partitions,
-- and the application role that may append to all of it but change none of it.
--
-- Forward-only. The rows V1 stored are moved into the partitioned table unchanged: their hashes
-- cover their bytes, so they cannot be rewritten (their `user_ref` stays as it was written).

-- 1. The partitioned table, filled from V1's plain one.

ALTER TABLE audit_events RENAME TO audit_events_v1;

-- h_n = SHA-256(h_{n-1} ‖ n ‖ canonical_n). The typed columns repeat what `canonical` says so
-- that compliance queries can filter; readers check that both agree.
--
-- Partitioned by `chained_at`, one partition per calendar month (UTC), so that retention drops
-- whole months. `chained_at` is when the event took its position: the appender sets it under the
-- chain lock and never lets it go backwards, so each partition holds one contiguous run of
-- positions (the event's own `time` would interleave events of two months around midnight).
CREATE TABLE audit_events (
    position    bigint      NOT NULL CHECK (position >= 1),
    -- Identifiers compare byte for byte (COLLATE "C"): filters are exact matches, and the
    -- indexes need no locale-aware comparisons.
    id          text        COLLATE "C" NOT NULL,
    time        timestamptz NOT NULL,
    actor       text        COLLATE "C" NOT NULL,
    action      text        COLLATE "C" NOT NULL,
    platform    text        COLLATE "C",
    bank        text        COLLATE "C",
    consent     text        COLLATE "C",
    -- Pseudonymous: a keyed hash of the platform's user reference (see `audit::Pseudonymiser`).
    user_ref    text        COLLATE "C",
    purpose     text        COLLATE "C",
    policy_hash text,
    categories  text[]      NOT NULL,
    fields      text[]      NOT NULL,
    -- A u32 in Rust: bigint holds every value.
    n_records   bigint      NOT NULL CHECK (n_records BETWEEN 0 AND 4294967295),
    decision    text        COLLATE "C" NOT NULL CHECK (decision IN ('allow', 'deny', 'error')),
    reason      text,
    request_id  text,
    prev_hash   bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    -- Exactly the bytes the chain hashed (`Event::canonical_bytes`, compact JSON).
    canonical   bytea       NOT NULL,
    -- Not hashed: it only says which partition holds the row (>= time, up to clock skew).
    chained_at  timestamptz NOT NULL
) PARTITION BY RANGE (chained_at);

-- A unique index on a partitioned table must contain the partition key, so this one is unique
-- per partition only; `audit_chain` below makes positions and event ids unique across the log.
CREATE UNIQUE INDEX audit_events_position_key ON audit_events (position, chained_at);
-- Compliance filters page by position (keyset), so each index ends with it.
CREATE INDEX audit_events_platform_position ON audit_events (platform, position);
CREATE INDEX audit_events_bank_position ON audit_events (bank, position);
CREATE INDEX audit_events_consent_position ON audit_events (consent, position);
CREATE INDEX audit_events_user_ref_position ON audit_events (user_ref, position);
CREATE INDEX audit_events_purpose_position ON audit_events (purpose, position);
CREATE INDEX audit_events_action_position ON audit_events (action, position);
CREATE INDEX audit_events_decision_position ON audit_events (decision, position);
CREATE INDEX audit_events_time_key ON audit_events (time);

-- Events chained in no prepared month (a clock far off, or partitions not prepared in time) land
-- here rather than fail; they stay queryable and verifiable, and retention never
-- drops them.
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- The chain's spine: one narrow row per position, never partitioned. Its keys are what make a
-- fork impossible (two events cannot take one position) and an event unique; appenders read the
-- head here, and `chained_at` says which partition holds the event.
CREATE TABLE audit_chain (
    position   bigint      PRIMARY KEY CHECK (position >= 1),
    id         text        COLLATE "C" NOT NULL UNIQUE,
    chained_at timestamptz NOT NULL,
    hash       bytea       NOT NULL CHECK (octet_length(hash) = 32)
);

-- Signed checkpoints: a JWS (ES256, `kid` in the gateway's JWKS) over (position, hash, time).
-- Each covers every event up to its position; a later one extends an earlier one.
CREATE TABLE audit_checkpoints (
    position bigint      PRIMARY KEY CHECK (position >= 1),
    hash     bytea       NOT NULL CHECK (octet_length(hash) = 32),
    time     timestamptz NOT NULL,
    kid      text        NOT NULL,
    jws      text        NOT NULL
);

-- The monthly partitions `audit_ensure_partitions` made, with their `chained_at` ranges; `dropped_at` is set
-- when retention dropped one (after archiving it).
CREATE TABLE audit_partitions (
    name       text        PRIMARY KEY,
    from_time  timestamptz NOT NULL,
    to_time    timestamptz NOT NULL,
    dropped_at timestamptz,
    CHECK (from_time < to_time)
);

-- Expired partitions, archived before they were dropped: where the JSON Lines export went, what
-- it holds, and the checkpoint that covers its last event.
CREATE TABLE audit_archives (
    partition      text        PRIMARY KEY REFERENCES audit_partitions (name),
    n_events       bigint      NOT NULL CHECK (n_events >= 0),
    first_position bigint,
    last_position  bigint,
    -- SHA-256 (hex) of the export file.
    sha256         text        NOT NULL,
    file           text        NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((n_events = 0) = (last_position IS NULL))
);

-- 2. Append-only, for everyone short of a superuser who disables it on purpose. Row triggers on
-- the partitioned table are cloned onto every partition; TRUNCATE triggers are per table, so
-- `audit_ensure_partitions` adds one to each partition it creates.

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_chain_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_archives_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- 3. Appending. One statement per batch: take the chain lock, read the head, hash the stored
-- bytes, insert spine and rows. Sent on its own it is its own transaction, so the lock is held
-- for the server's work only, never across a round trip to the gateway.
--
-- It commits asynchronously, which releases the lock before the WAL flush, so the next batch
-- works while this one's is being flushed. Durability comes from the gateway's barrier: on the
-- same connection, right after, a transaction that commits synchronously (it takes an id, so
-- it writes a commit record, and waits for the flush up to that record). WAL is sequential:
-- that flush covers this batch, and no batch can be durable without every batch before it.
-- Callers are released only after the barrier.
--
-- h_n = SHA-256(h_{n-1} ‖ n ‖ canonical_n), n as 8 bytes big-endian (`int8send`), exactly as
-- `audit::chain_hash` computes it; the gateway checks every returned hash against its own.
-- `categories` and `fields` come as one array literal per event (PostgreSQL arrays cannot be
-- ragged). `chained_at` is the database's clock, never behind the head's.
CREATE FUNCTION audit_append(
    ids text[], times timestamptz[], actors text[], actions text[], platforms text[],
    banks text[], consents text[], user_refs text[], purposes text[], policy_hashes text[],
    categories text[], fields text[], n_records bigint[], decisions text[], reasons text[],
    request_ids text[], canonicals bytea[],
    OUT first_position bigint, OUT first_prev_hash bytea, OUT hashes bytea[],
    OUT chained_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    head_position bigint;
    head_hash     bytea;
    head_chained  timestamptz;
    prevs         bytea[] := '{}';
    running       bytea;
    canonical     bytea;
    n             bigint := 0;
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
    hashes := '{}';
    running := head_hash;
    FOREACH canonical IN ARRAY canonicals LOOP
        n := n + 1;
        prevs := prevs || running;
        running := sha256(running || int8send(head_position + n) || canonical);
        hashes := hashes || running;
    END LOOP;
    INSERT INTO audit_chain (position, id, chained_at, hash)
        SELECT head_position + s.n, s.id, audit_append.chained_at, s.hash
        FROM unnest(ids, hashes) WITH ORDINALITY AS s(id, hash, n);
    INSERT INTO audit_events
        (position, id, time, actor, action, platform, bank, consent, user_ref, purpose,
         policy_hash, categories, fields, n_records, decision, reason, request_id,
         prev_hash, hash, canonical, chained_at)
        SELECT head_position + e.n, e.id, e.time, e.actor, e.action, e.platform, e.bank,
               e.consent, e.user_ref, e.purpose, e.policy_hash, e.categories::text[],
               e.fields::text[], e.n_records, e.decision, e.reason, e.request_id,
               e.prev_hash, e.hash, e.canonical, audit_append.chained_at
        FROM unnest(ids, times, actors, actions, platforms, banks, consents, user_refs,
                    purposes, policy_hashes, categories, fields, n_records, decisions,
                    reasons, request_ids, prevs, hashes, canonicals)
             WITH ORDINALITY AS e(id, time, actor, action, platform, bank, consent, user_ref,
                                  purpose, policy_hash, categories, fields, n_records,
                                  decision, reason, request_id, prev_hash, hash, canonical, n);
    first_position := head_position + 1;
    first_prev_hash := head_hash;
END;
$$;

-- 4. Partitions. SECURITY DEFINER: the application role may ask for partitions but owns none,
-- so it can neither drop nor alter them.

-- Makes sure a partition exists for every month from the one holding `from_time` to the one
-- holding `to_time`; returns how many it created. A month whose events already sit in the
-- default partition is left there (PostgreSQL cannot move them under a new partition).
CREATE FUNCTION audit_ensure_partitions(range_start timestamptz, range_end timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month_start timestamptz :=
        date_trunc('month', range_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz;
    part_name   text;
    created     integer := 0;
BEGIN
    IF range_end - range_start > interval '20 years' THEN
        RAISE EXCEPTION 'refusing to create partitions for more than 20 years at once';
    END IF;
    WHILE month_start <= range_end LOOP
        month_end := ((month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
        part_name := 'audit_events_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY"m"MM');
        IF NOT EXISTS (SELECT 1 FROM audit_partitions p WHERE p.name = part_name)
           AND NOT EXISTS (SELECT 1 FROM audit_events_default d
                           WHERE d.chained_at >= month_start AND d.chained_at < month_end) THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                           part_name, month_start, month_end);
            -- Reached through `audit_events` only: no privilege on the partition itself.
            EXECUTE format('REVOKE ALL ON TABLE %I FROM PUBLIC', part_name);
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bankgate_app') THEN
                EXECUTE format('REVOKE ALL ON TABLE %I FROM bankgate_app', part_name);
            END IF;
            EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()',
                           part_name);
            INSERT INTO audit_partitions (name, from_time, to_time)
                VALUES (part_name, month_start, month_end);
            created := created + 1;
        END IF;
        month_start := month_end;
    END LOOP;
    RETURN created;
END;
$$;

-- Drops an expired monthly partition, but only once it is archived: the archive row must match
-- what the partition holds (count and last position), a checkpoint must sit at its last
-- position, and the partition must have ended more than `retention` ago (at least 30 days).
-- Records the archive and the drop in the same transaction.
CREATE FUNCTION audit_drop_partition(
    partition_name text, retention interval, archive_n_events bigint,
    archive_first_position bigint, archive_last_position bigint, archive_sha256 text,
    archive_file text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part       audit_partitions%ROWTYPE;
    held_count bigint;
    held_first bigint;
    held_last  bigint;
BEGIN
    IF retention < interval '30 days' THEN
        RAISE EXCEPTION 'retention % is shorter than 30 days', retention;
    END IF;
    SELECT * INTO part FROM audit_partitions p WHERE p.name = partition_name FOR UPDATE;
    IF NOT FOUND OR part.dropped_at IS NOT NULL THEN
        RAISE EXCEPTION 'no live audit partition %', partition_name;
    END IF;
    IF part.to_time > now() - retention THEN
        RAISE EXCEPTION 'audit partition % has not expired', partition_name;
    END IF;
    EXECUTE format('SELECT count(*), min(position), max(position) FROM %I', partition_name)
        INTO held_count, held_first, held_last;
    IF held_count <> archive_n_events
       OR held_first IS DISTINCT FROM archive_first_position
       OR held_last IS DISTINCT FROM archive_last_position THEN
        RAISE EXCEPTION 'archive of % does not match the partition (% events, last %)',
            partition_name, held_count, held_last;
    END IF;
    IF held_last IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.position = held_last) THEN
        RAISE EXCEPTION 'no checkpoint at position % covers the archive of %',
            held_last, partition_name;
    END IF;
    INSERT INTO audit_archives
        (partition, n_events, first_position, last_position, sha256, file)
        VALUES (partition_name, archive_n_events, archive_first_position,
                archive_last_position, archive_sha256, archive_file);
    EXECUTE format('ALTER TABLE audit_events DETACH PARTITION %I', partition_name);
    EXECUTE format('DROP TABLE %I', partition_name);
    UPDATE audit_partitions p SET dropped_at = now() WHERE p.name = partition_name;
END;
$$;

REVOKE ALL ON FUNCTION audit_ensure_partitions(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_drop_partition(text, interval, bigint, bigint, bigint, text, text)
    FROM PUBLIC;

-- V1's rows: chained when they happened, as far as anyone knows, but never backwards.
CREATE TEMPORARY TABLE audit_events_v1_chained ON COMMIT DROP AS
    SELECT position, max(time) OVER (ORDER BY position) AS chained_at FROM audit_events_v1;

-- Partitions for the months V1's rows fall in and the next few, then the rows themselves.
SELECT audit_ensure_partitions(
    least((SELECT min(chained_at) FROM audit_events_v1_chained), now() - interval '1 month'),
    now() + interval '3 months');

INSERT INTO audit_events
    SELECT v.position, id, time, actor, action, platform, bank, consent, user_ref, purpose,
           policy_hash, categories, fields, n_records, decision, reason, request_id,
           prev_hash, hash, canonical, c.chained_at
    FROM audit_events_v1 v JOIN audit_events_v1_chained c USING (position)
    ORDER BY position;
INSERT INTO audit_chain (position, id, chained_at, hash)
    SELECT v.position, id, c.chained_at, hash
    FROM audit_events_v1 v JOIN audit_events_v1_chained c USING (position)
    ORDER BY position;

DROP TABLE audit_events_v1;

-- 5. The application role. The gateway should connect as a login role that is a member of
-- `bankgate_app` (see README, "Running as the application role"); the role that runs these
-- migrations owns the tables. The application may read and write the operational tables, but
-- on the audit log it may only append and read: no UPDATE, DELETE or TRUNCATE, and it owns
-- nothing it could drop or alter.

-- Roles belong to the whole server: another database's migration may create it at the same
-- moment.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bankgate_app') THEN
        CREATE ROLE bankgate_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

GRANT USAGE ON SCHEMA public TO bankgate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO bankgate_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO bankgate_app;
-- Tables later migrations create (run by the same owner) get the same.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO bankgate_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO bankgate_app;

REVOKE ALL ON audit_events, audit_events_default, audit_chain, audit_checkpoints,
              audit_partitions, audit_archives
    FROM bankgate_app;
GRANT SELECT, INSERT ON audit_events, audit_chain, audit_checkpoints TO bankgate_app;
GRANT SELECT ON audit_partitions, audit_archives TO bankgate_app;
-- The migration history: readable (so that `serve` can see there is nothing to apply), no more.
REVOKE ALL ON refinery_schema_history FROM bankgate_app;
GRANT SELECT ON refinery_schema_history TO bankgate_app;
DO $$
DECLARE
    part text;
BEGIN
    FOR part IN SELECT name FROM audit_partitions LOOP
        EXECUTE format('REVOKE ALL ON TABLE %I FROM bankgate_app', part);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION audit_ensure_partitions(timestamptz, timestamptz) TO bankgate_app;
GRANT EXECUTE ON FUNCTION audit_append(text[], timestamptz[], text[], text[], text[], text[],
    text[], text[], text[], text[], text[], text[], bigint[], text[], text[], text[], bytea[])
    TO bankgate_app;
GRANT EXECUTE ON FUNCTION audit_drop_partition(text, interval, bigint, bigint, bigint, text, text)
    TO bankgate_app;
