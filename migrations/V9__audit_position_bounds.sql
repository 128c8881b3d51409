-- Time-bounded compliance queries page by position (keyset) like every other query. Without a
-- bound on `position`, a query for a day walks its partition's positions from the month's start
-- until it has a page. Because `chained_at` never goes backwards along the chain (the appender
-- takes greatest(clock, head)), the first position chained at or after a time is found by a
-- binary search over the spine's primary key: some 25 index probes on 10M events.
--
-- `audit_first_position_at(ts)`: the first position whose `chained_at` >= ts (one past the
-- head when none is). A position the spine lacks counts as "at or after": the bound can only
-- move earlier, never skip an event.
CREATE FUNCTION audit_first_position_at(ts timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    lo  bigint;
    hi  bigint;
    mid bigint;
    at  timestamptz;
BEGIN
    SELECT min(position), max(position) + 1 INTO lo, hi FROM audit_chain;
    IF lo IS NULL THEN
        RETURN 1;
    END IF;
    WHILE lo < hi LOOP
        mid := lo + (hi - lo) / 2;
        SELECT c.chained_at INTO at FROM audit_chain c WHERE c.position = mid;
        IF FOUND AND at < ts THEN
            lo := mid + 1;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN lo;
END
$$;

GRANT EXECUTE ON FUNCTION audit_first_position_at(timestamptz) TO bankgate_app;
