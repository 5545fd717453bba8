-- plan.backfill.batch_statements[0]
SELECT zdm_k.id, true
  FROM ONLY public.orders AS zdm_k
 WHERE (zdm_k.id) > ($3[1]::bigint)
   AND (zdm_k.id) <= ($1[1]::bigint)
 ORDER BY zdm_k.id
OFFSET $2 - 1 LIMIT 1

-- plan.backfill.batch_statements[1]
INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
SELECT id,
       customer_id,
       "Amount",
       n,
       ("Amount" * 100)
  FROM ONLY public.orders AS zdm_src
 WHERE (zdm_src.id) > ($3[1]::bigint)
   AND (zdm_src.id) <= ($4[1]::bigint)
   AND NOT EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t
                    WHERE (zdm_t.id) = (zdm_src.id)
                      AND (zdm_t.id) > ($3[1]::bigint)
                      AND (zdm_t.id) <= ($4[1]::bigint))

-- plan.backfill.batch_statements[2]
SELECT count(*)
  FROM (SELECT FROM ONLY public.orders AS zdm_k
         WHERE (zdm_k.id) > ($3[1]::bigint)
           AND (zdm_k.id) <= ($1[1]::bigint)
         ORDER BY zdm_k.id
         LIMIT $2) AS zdm_left

-- plan.backfill.beyond_upper.function
zdm.shadow_beyond_m

-- plan.backfill.beyond_upper.key_types[0]
bigint

-- plan.backfill.description
copy existing rows of public.orders into public.zdm_shadow_m

-- plan.backfill.function
zdm.backfill_m

-- plan.backfill.key_columns[0]
id

-- plan.backfill.table
public.orders

-- plan.backfill.upper_bound_sql
SELECT ARRAY[id::text] FROM ONLY public.orders ORDER BY id DESC LIMIT 1

-- plan.complete[0].description
drop the reverse sync trigger

-- plan.complete[0].lock.mode
ACCESS_EXCLUSIVE

-- plan.complete[0].lock.relation
public.orders

-- plan.complete[0].sql
DROP TRIGGER IF EXISTS zdm_reverse_m ON public.orders

-- plan.complete[0].top_level = false

-- plan.complete[1].description
drop the reverse truncate trigger

-- plan.complete[1].lock.mode
ACCESS_EXCLUSIVE

-- plan.complete[1].lock.relation
public.orders

-- plan.complete[1].sql
DROP TRIGGER IF EXISTS zdm_reverse_truncate_m ON public.orders

-- plan.complete[1].top_level = false

-- plan.complete[2].description
drop the old table

-- plan.complete[2].lock.mode
ACCESS_EXCLUSIVE

-- plan.complete[2].lock.relation
public.zdm_old_m

-- plan.complete[2].sql
DROP TABLE IF EXISTS public.zdm_old_m

-- plan.complete[2].top_level = false

-- plan.complete[3].description
drop the sync functions

-- plan.complete[3].sql
DROP FUNCTION IF EXISTS zdm.shadow_sync_m(), zdm.shadow_reverse_m(), zdm.shadow_truncate_m(), zdm.shadow_reverse_truncate_m()

-- plan.complete[3].top_level = false

-- plan.complete[4].description
drop the backfill batch function

-- plan.complete[4].sql
DROP FUNCTION IF EXISTS zdm.backfill_m(text[], integer, text[])

-- plan.complete[4].top_level = false

-- plan.complete[5].description
drop the settle function

-- plan.complete[5].sql
DROP FUNCTION IF EXISTS zdm.shadow_settle_m(boolean, boolean)

-- plan.complete[5].top_level = false

-- plan.complete[6].description
drop the table of noted keys

-- plan.complete[6].sql
DROP TABLE IF EXISTS public.zdm_stale_m

-- plan.complete[6].top_level = false

-- plan.complete[7].description
drop the function telling the keys after the upper bound

-- plan.complete[7].sql
DROP FUNCTION IF EXISTS zdm.shadow_beyond_m(bigint)

-- plan.complete[7].top_level = false

-- plan.complete[8].description
give index zdm_shadow_m_pkey its original name orders_pkey

-- plan.complete[8].sql
ALTER INDEX public.zdm_shadow_m_pkey RENAME TO orders_pkey

-- plan.complete[8].top_level = false

-- plan.complete[9].description
give the identity sequence public.zdm_shadow_m_n_seq its original name

-- plan.complete[9].sql
ALTER SEQUENCE public.zdm_shadow_m_n_seq RENAME TO orders_n_seq

-- plan.complete[9].top_level = false

-- plan.rollback[0].description
drop the trigger feeding the shadow

-- plan.rollback[0].lock.mode
ACCESS_EXCLUSIVE

-- plan.rollback[0].lock.relation
public.orders

-- plan.rollback[0].sql
DROP TRIGGER IF EXISTS zdm_sync_m ON public.orders

-- plan.rollback[0].top_level = false

-- plan.rollback[1].description
drop the trigger following a TRUNCATE of the original

-- plan.rollback[1].lock.mode
ACCESS_EXCLUSIVE

-- plan.rollback[1].lock.relation
public.orders

-- plan.rollback[1].sql
DROP TRIGGER IF EXISTS zdm_truncate_m ON public.orders

-- plan.rollback[1].top_level = false

-- plan.rollback[2].description
drop the shadow table

-- plan.rollback[2].lock.mode
ACCESS_EXCLUSIVE

-- plan.rollback[2].lock.relation
public.zdm_shadow_m

-- plan.rollback[2].sql
DROP TABLE IF EXISTS public.zdm_shadow_m

-- plan.rollback[2].top_level = false

-- plan.rollback[3].description
drop the sync functions

-- plan.rollback[3].sql
DROP FUNCTION IF EXISTS zdm.shadow_sync_m(), zdm.shadow_reverse_m(), zdm.shadow_truncate_m(), zdm.shadow_reverse_truncate_m()

-- plan.rollback[3].top_level = false

-- plan.rollback[4].description
drop the backfill batch function

-- plan.rollback[4].sql
DROP FUNCTION IF EXISTS zdm.backfill_m(text[], integer, text[])

-- plan.rollback[4].top_level = false

-- plan.rollback[5].description
drop the settle function

-- plan.rollback[5].sql
DROP FUNCTION IF EXISTS zdm.shadow_settle_m(boolean, boolean)

-- plan.rollback[5].top_level = false

-- plan.rollback[6].description
drop the table of noted keys

-- plan.rollback[6].sql
DROP TABLE IF EXISTS public.zdm_stale_m

-- plan.rollback[6].top_level = false

-- plan.rollback[7].description
drop the function telling the keys after the upper bound

-- plan.rollback[7].sql
DROP FUNCTION IF EXISTS zdm.shadow_beyond_m(bigint)

-- plan.rollback[7].top_level = false

-- plan.shadow.column_pairs[0][0]
id

-- plan.shadow.column_pairs[0][1]
id

-- plan.shadow.column_pairs[1][0]
customer_id

-- plan.shadow.column_pairs[1][1]
customer_id

-- plan.shadow.column_pairs[2][0]
Amount

-- plan.shadow.column_pairs[2][1]
Amount

-- plan.shadow.column_pairs[3][0]
n

-- plan.shadow.column_pairs[3][1]
n

-- plan.shadow.compared_columns[0]
id

-- plan.shadow.compared_columns[1]
customer_id

-- plan.shadow.compared_columns[2]
Amount

-- plan.shadow.compared_columns[3]
n

-- plan.shadow.compared_columns[4]
total_cents

-- plan.shadow.forward_trigger
zdm_sync_m

-- plan.shadow.index_names[0][0]
zdm_shadow_m_pkey

-- plan.shadow.index_names[0][1]
orders_pkey

-- plan.shadow.index_names[1][0]
orders_customer_id_idx

-- plan.shadow.index_names[1][1]
orders_customer_id_idx

-- plan.shadow.indexes_after_copy = false

-- plan.shadow.not_compared[0]
created_at

-- plan.shadow.not_valid_checks[0]
ADD CONSTRAINT amount_positive CHECK (("Amount" > 0)) NOT VALID

-- plan.shadow.notes
public.zdm_stale_m

-- plan.shadow.old
public.zdm_old_m

-- plan.shadow.old_relname
zdm_old_m

-- plan.shadow.reverse_function
zdm.shadow_reverse_m

-- plan.shadow.reverse_trigger
zdm_reverse_m

-- plan.shadow.schema
public

-- plan.shadow.settle_function
zdm.shadow_settle_m

-- plan.shadow.shadow
public.zdm_shadow_m

-- plan.shadow.shadow_relname
zdm_shadow_m

-- plan.shadow.table
public.orders

-- plan.shadow.table_relname
orders

-- plan.shadow.truncate_triggers.forward
zdm_truncate_m

-- plan.shadow.truncate_triggers.reverse
zdm_reverse_truncate_m

-- plan.shadow.truncate_triggers.reverse_function
zdm.shadow_reverse_truncate_m

-- plan.shadow.verify_diff_sql
WITH zdm_cmp AS MATERIALIZED (
    SELECT ROW(coalesce(s.zdm_k1, d.zdm_k1))::text AS zdm_key,
           (s.zdm_k1 IS NULL OR d.zdm_k1 IS NULL OR s.zdm_h1 IS DISTINCT FROM d.zdm_h1 OR s.zdm_h2 IS DISTINCT FROM d.zdm_h2 OR s.zdm_h3 IS DISTINCT FROM d.zdm_h3 OR s.zdm_h4 IS DISTINCT FROM d.zdm_h4 OR s.zdm_h5 IS DISTINCT FROM d.zdm_h5) AS zdm_differs
      FROM (SELECT id::bigint AS zdm_k1, pg_catalog.hashtextextended(((id)::bigint)::text, 0) AS zdm_h1, pg_catalog.hashtextextended(((customer_id)::bigint)::text, 0) AS zdm_h2, pg_catalog.hashtextextended((("Amount")::bigint)::text, 0) AS zdm_h3, pg_catalog.hashtextextended(((n)::bigint)::text, 0) AS zdm_h4, pg_catalog.hashtextextended((("Amount" * 100)::bigint)::text, 0) AS zdm_h5 FROM ONLY public.orders) s
      FULL JOIN (SELECT id AS zdm_k1, pg_catalog.hashtextextended(id::text, 0) AS zdm_h1, pg_catalog.hashtextextended(customer_id::text, 0) AS zdm_h2, pg_catalog.hashtextextended("Amount"::text, 0) AS zdm_h3, pg_catalog.hashtextextended(n::text, 0) AS zdm_h4, pg_catalog.hashtextextended(total_cents::text, 0) AS zdm_h5 FROM ONLY public.zdm_shadow_m) d
        ON s.zdm_k1 = d.zdm_k1
)
SELECT count(*) FILTER (WHERE zdm_differs) AS differing_rows,
       ARRAY(SELECT zdm_key FROM zdm_cmp WHERE zdm_differs ORDER BY zdm_key LIMIT 5) AS sample_keys
  FROM zdm_cmp

-- plan.shadow.verify_pending_sql
SELECT s.zdm_rows, d.zdm_rows, s.zdm_sums, d.zdm_sums
  FROM (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended((id)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((id)::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended((customer_id)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((customer_id)::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(("Amount")::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(("Amount")::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended((n)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((n)::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(("Amount" * 100)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(("Amount" * 100)::bigint)]::text[] AS zdm_sums
      FROM ONLY public.orders AS zdm_t, LATERAL (SELECT pg_catalog.hashint8extended((id)::bigint, 0) AS zdm_k) zdm_l
     WHERE NOT EXISTS (SELECT FROM public.zdm_stale_m AS zdm_n WHERE (zdm_n.id)::bigint OPERATOR(pg_catalog.=) (zdm_t.id)::bigint)) s,
       (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(id, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(id),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(customer_id, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(customer_id),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended("Amount", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count("Amount"),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(n, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(n),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(total_cents, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(total_cents)]::text[] AS zdm_sums
      FROM ONLY public.zdm_shadow_m AS zdm_t, LATERAL (SELECT pg_catalog.hashint8extended(id, 0) AS zdm_k) zdm_l
     WHERE NOT EXISTS (SELECT FROM public.zdm_stale_m AS zdm_n WHERE (zdm_n.id)::bigint OPERATOR(pg_catalog.=) zdm_t.id)) d

-- plan.shadow.verify_sql
SELECT s.zdm_rows, d.zdm_rows, s.zdm_sums, d.zdm_sums
  FROM (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended((id)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((id)::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended((customer_id)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((customer_id)::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(("Amount")::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(("Amount")::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended((n)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((n)::bigint),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(("Amount" * 100)::bigint, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(("Amount" * 100)::bigint)]::text[] AS zdm_sums
      FROM ONLY public.orders, LATERAL (SELECT pg_catalog.hashint8extended((id)::bigint, 0) AS zdm_k) zdm_l) s,
       (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(id, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(id),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(customer_id, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(customer_id),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended("Amount", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count("Amount"),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(n, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(n),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashint8extended(total_cents, zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(total_cents)]::text[] AS zdm_sums
      FROM ONLY public.zdm_shadow_m, LATERAL (SELECT pg_catalog.hashint8extended(id, 0) AS zdm_k) zdm_l) d

-- plan.start[0].description
create the shadow table like the original

-- plan.start[0].lock.mode
ACCESS_SHARE

-- plan.start[0].lock.relation
public.orders

-- plan.start[0].sql
CREATE TABLE public.zdm_shadow_m (LIKE public.orders INCLUDING ALL)

-- plan.start[0].top_level = false

-- plan.start[1].description
alter the shadow: ALTER COLUMN "Amount" TYPE bigint

-- plan.start[1].sql
ALTER TABLE public.zdm_shadow_m ALTER COLUMN "Amount" TYPE bigint

-- plan.start[1].top_level = false

-- plan.start[2].description
alter the shadow: ADD COLUMN total_cents bigint

-- plan.start[2].sql
ALTER TABLE public.zdm_shadow_m ADD COLUMN total_cents bigint

-- plan.start[2].top_level = false

-- plan.start[3].description
alter the shadow: ADD COLUMN created_at timestamp with time zone NOT NULL DEFAULT now()

-- plan.start[3].sql
ALTER TABLE public.zdm_shadow_m ADD COLUMN created_at timestamp with time zone NOT NULL DEFAULT now()

-- plan.start[3].top_level = false

-- plan.start[4].description
alter the shadow: DROP COLUMN legacy

-- plan.start[4].sql
ALTER TABLE public.zdm_shadow_m DROP COLUMN legacy

-- plan.start[4].top_level = false

-- plan.start[5].description
foreign key orders_customer_id_fkey on the shadow, NOT VALID

-- plan.start[5].lock.mode
SHARE_ROW_EXCLUSIVE

-- plan.start[5].lock.relation
public.customers

-- plan.start[5].sql
ALTER TABLE public.zdm_shadow_m ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers (id) ON DELETE CASCADE NOT VALID

-- plan.start[5].top_level = false

-- plan.start[6].description
table of the keys whose shadow row may be stale (see the settle function)

-- plan.start[6].sql
CREATE TABLE public.zdm_stale_m (id bigint)

-- plan.start[6].top_level = false

-- plan.start[7].description
index of the table of noted keys (probed by the trigger on inserts)

-- plan.start[7].sql
CREATE INDEX ON public.zdm_stale_m (id)

-- plan.start[7].top_level = false

-- plan.start[8].description
comment on the table of noted keys

-- plan.start[8].sql
COMMENT ON TABLE public.zdm_stale_m IS 'pg_zdm migration m: keys of public.orders whose shadow row may be stale (deleted, or updated before it was copied; see zdm.shadow_settle_...)'

-- plan.start[8].top_level = false

-- plan.start[9].description
function settling the noted keys (shadow rows a batch copied before a delete or an update)

-- plan.start[9].sql
CREATE FUNCTION zdm.shadow_settle_m(zdm_copy_missing boolean DEFAULT true, zdm_no_other_writer boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql AS $zdm$
-- pg_zdm migration m: makes the rows of public.zdm_shadow_m whose keys
-- are noted in public.zdm_stale_m equal to the rows of public.orders again: a backfill batch
-- may have copied them as they were before a delete or an update.
-- zdm_copy_missing: the batches are over, so the shadow must also gain the
-- rows of noted keys it lacks (false while batches still copy them).
-- zdm_no_other_writer: nobody else writes the shadow now (the end of a copy
-- phase): the rows of noted keys are simply replaced, in two set statements.
DECLARE
    zdm_noted tid[];
    zdm_missing tid[];
    zdm_held_rows tid[];
    zdm_held_notes tid[];
    zdm_settled tid[];
    zdm_removed bigint;
BEGIN
    SELECT array_agg(ctid) INTO zdm_noted FROM public.zdm_stale_m;
    IF zdm_noted IS NULL THEN
        RETURN 0;
    END IF;
    IF zdm_no_other_writer THEN
        DELETE FROM public.zdm_shadow_m AS zdm_t
         USING public.zdm_stale_m AS zdm_n
         WHERE zdm_n.ctid = ANY (zdm_noted) AND (zdm_t.id) = (zdm_n.id);
        GET DIAGNOSTICS zdm_removed = ROW_COUNT;
        -- A new statement: writes committed since the notes were read are
        -- copied as they are now (their own notes stay for the next settle).
        INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
        SELECT id, customer_id, "Amount", n, ("Amount" * 100)
          FROM ONLY public.orders AS zdm_s
         WHERE (zdm_s.id) IN (SELECT zdm_n.id FROM public.zdm_stale_m AS zdm_n
                            WHERE zdm_n.ctid = ANY (zdm_noted));
        DELETE FROM public.zdm_stale_m WHERE ctid = ANY (zdm_noted);
        RETURN zdm_removed;
    END IF;
    -- Notes whose key has no row in the shadow: settled as they are (a
    -- batch copies the row later), or by a copy when the batches are over.
    SELECT array_agg(zdm_n.ctid) INTO zdm_missing
      FROM public.zdm_stale_m AS zdm_n
     WHERE zdm_n.ctid = ANY (zdm_noted)
       AND NOT EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t WHERE (zdm_t.id) = (zdm_n.id));

    IF zdm_copy_missing AND zdm_missing IS NOT NULL THEN
        -- No batch will copy them any more (rows the original gained, or
        -- changed, while the shadow was written only by the batches): they
        -- come from the original as it is now. A writer's copy made meanwhile
        -- is newer and stays.
        INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
        SELECT id, customer_id, "Amount", n, ("Amount" * 100)
          FROM ONLY public.orders AS zdm_s
         WHERE (zdm_s.id) IN (SELECT zdm_n.id FROM public.zdm_stale_m AS zdm_n
                            WHERE zdm_n.ctid = ANY (zdm_missing))
        ON CONFLICT (id) DO NOTHING;
    END IF;
    -- The shadow rows of the other notes that this call can lock, and their
    -- notes. A row a writer holds is left, with its note, for the next call.
    -- Only the rows locked here are judged below: a row a writer makes from
    -- now on is written in the same transaction as public.orders's, so it is right.
    SELECT array_agg(zdm_row), array_agg(zdm_note)
      INTO zdm_held_rows, zdm_held_notes
      FROM (SELECT zdm_t.ctid AS zdm_row, zdm_n.ctid AS zdm_note
              FROM public.zdm_stale_m AS zdm_n
              JOIN public.zdm_shadow_m AS zdm_t ON (zdm_t.id) = (zdm_n.id)
             WHERE zdm_n.ctid = ANY (zdm_noted)
               FOR UPDATE OF zdm_t SKIP LOCKED) AS zdm_held;
    zdm_settled := coalesce(zdm_missing, '{}') || coalesce(zdm_held_notes, '{}');
    IF zdm_held_rows IS NULL THEN
        DELETE FROM public.zdm_stale_m WHERE ctid = ANY (zdm_settled);
        RETURN 0;
    END IF;
    -- A new statement, so a new snapshot: every write to these rows committed
    -- before the locks is seen. A key inserted again since is in public.orders.
    DELETE FROM public.zdm_shadow_m AS zdm_t
     WHERE zdm_t.ctid = ANY (zdm_held_rows)
       AND NOT EXISTS (SELECT FROM ONLY public.orders AS zdm_s WHERE (zdm_s.id) = (zdm_t.id));
    GET DIAGNOSTICS zdm_removed = ROW_COUNT;
    -- The others take the original's values (rows deleted and inserted again,
    -- rows updated before their copy). No change when they have them already.
    UPDATE public.zdm_shadow_m AS zdm_t
       SET (customer_id, "Amount", total_cents) = (SELECT customer_id, "Amount", ("Amount" * 100)
                         FROM ONLY public.orders AS zdm_s
                        WHERE (zdm_s.id) = (zdm_t.id))
     WHERE zdm_t.ctid = ANY (zdm_held_rows)
       AND EXISTS (SELECT FROM ONLY public.orders AS zdm_s WHERE (zdm_s.id) = (zdm_t.id));
    DELETE FROM public.zdm_stale_m WHERE ctid = ANY (zdm_settled);
    RETURN zdm_removed;
END;
$zdm$

-- plan.start[9].top_level = false

-- plan.start[10].description
function telling the keys after the backfill's upper bound (none until it begins)

-- plan.start[10].sql
CREATE OR REPLACE FUNCTION zdm.shadow_beyond_m(bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $zdm$
SELECT false
$zdm$

-- plan.start[10].top_level = false

-- plan.start[11].description
backfill batch function

-- plan.start[11].sql
CREATE FUNCTION zdm.backfill_m(upper_bound text[], batch_size integer, last_key text[])
RETURNS TABLE (zdm_rows_scanned bigint, zdm_rows_changed bigint, zdm_last_key text[])
LANGUAGE plpgsql AS $zdm$
#variable_conflict use_column
-- pg_zdm migration m: one keyset batch of the backfill of public.orders
-- (copy existing rows of public.orders into public.zdm_shadow_m).
-- $1: key of the last row that existed when the backfill began (upper bound)
-- $2: batch size
-- $3: key of the last row of the previous batch, NULL for the first batch
<<zdm_batch>>
DECLARE
    zdm_end1 bigint;
    zdm_full boolean;
    zdm_scanned bigint;
    zdm_changed bigint;
BEGIN
    -- The batch ends $2 rows further along the key index, or at the upper bound.
    IF $3 IS NULL THEN
        SELECT zdm_k.id, true
          INTO zdm_batch.zdm_end1, zdm_batch.zdm_full
          FROM ONLY public.orders AS zdm_k
         WHERE (zdm_k.id) <= ($1[1]::bigint)
         ORDER BY zdm_k.id
        OFFSET $2 - 1 LIMIT 1;
    ELSE
        SELECT zdm_k.id, true
          INTO zdm_batch.zdm_end1, zdm_batch.zdm_full
          FROM ONLY public.orders AS zdm_k
         WHERE (zdm_k.id) > ($3[1]::bigint)
           AND (zdm_k.id) <= ($1[1]::bigint)
         ORDER BY zdm_k.id
        OFFSET $2 - 1 LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        zdm_batch.zdm_full := false;
        zdm_batch.zdm_end1 := $1[1]::bigint;
    END IF;
    BEGIN
        IF $3 IS NULL THEN
            IF EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t
                        WHERE (zdm_t.id) <= (zdm_batch.zdm_end1)) THEN
                INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
                SELECT id,
                       customer_id,
                       "Amount",
                       n,
                       ("Amount" * 100)
                  FROM ONLY public.orders AS zdm_src
                 WHERE (zdm_src.id) <= (zdm_batch.zdm_end1)
                   AND NOT EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t
                                    WHERE (zdm_t.id) = (zdm_src.id)
                                      AND (zdm_t.id) <= (zdm_batch.zdm_end1));
            ELSE
                INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
                SELECT id,
                       customer_id,
                       "Amount",
                       n,
                       ("Amount" * 100)
                  FROM ONLY public.orders AS zdm_src
                 WHERE (zdm_src.id) <= (zdm_batch.zdm_end1);
            END IF;
        ELSE
            IF EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t
                        WHERE (zdm_t.id) > ($3[1]::bigint)
                          AND (zdm_t.id) <= (zdm_batch.zdm_end1)) THEN
                INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
                SELECT id,
                       customer_id,
                       "Amount",
                       n,
                       ("Amount" * 100)
                  FROM ONLY public.orders AS zdm_src
                 WHERE (zdm_src.id) > ($3[1]::bigint)
                   AND (zdm_src.id) <= (zdm_batch.zdm_end1)
                   AND NOT EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t
                                    WHERE (zdm_t.id) = (zdm_src.id)
                                      AND (zdm_t.id) > ($3[1]::bigint)
                                      AND (zdm_t.id) <= (zdm_batch.zdm_end1));
            ELSE
                INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
                SELECT id,
                       customer_id,
                       "Amount",
                       n,
                       ("Amount" * 100)
                  FROM ONLY public.orders AS zdm_src
                 WHERE (zdm_src.id) > ($3[1]::bigint)
                   AND (zdm_src.id) <= (zdm_batch.zdm_end1);
            END IF;
        END IF;
        GET DIAGNOSTICS zdm_changed = ROW_COUNT;
    EXCEPTION WHEN unique_violation THEN
        -- A writer's trigger copied one of these rows (inserted or moved to its
        -- key) after this batch's snapshot:
        -- the same batch again, leaving the rows already there alone.
        IF $3 IS NULL THEN
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            SELECT id,
                   customer_id,
                   "Amount",
                   n,
                   ("Amount" * 100)
              FROM ONLY public.orders AS zdm_src
             WHERE (zdm_src.id) <= (zdm_batch.zdm_end1)
            ON CONFLICT (id) DO NOTHING;
        ELSE
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            SELECT id,
                   customer_id,
                   "Amount",
                   n,
                   ("Amount" * 100)
              FROM ONLY public.orders AS zdm_src
             WHERE (zdm_src.id) > ($3[1]::bigint)
               AND (zdm_src.id) <= (zdm_batch.zdm_end1)
            ON CONFLICT (id) DO NOTHING;
        END IF;
        GET DIAGNOSTICS zdm_changed = ROW_COUNT;
    END;
    -- Rows deleted or updated after this batch's snapshot may have been
    -- copied as they were; those writes noted the keys. Settle them now.
    PERFORM zdm.shadow_settle_m(false);
    -- Rows covered: the batch size, or the rows that were left.
    IF zdm_batch.zdm_full THEN
        zdm_batch.zdm_scanned := $2;
    ELSE
        IF $3 IS NULL THEN
            SELECT count(*)
              INTO zdm_batch.zdm_scanned
              FROM (SELECT FROM ONLY public.orders AS zdm_k
                     WHERE (zdm_k.id) <= ($1[1]::bigint)
                     ORDER BY zdm_k.id
                     LIMIT $2) AS zdm_left;
        ELSE
            SELECT count(*)
              INTO zdm_batch.zdm_scanned
              FROM (SELECT FROM ONLY public.orders AS zdm_k
                     WHERE (zdm_k.id) > ($3[1]::bigint)
                       AND (zdm_k.id) <= ($1[1]::bigint)
                     ORDER BY zdm_k.id
                     LIMIT $2) AS zdm_left;
        END IF;
    END IF;
    RETURN QUERY SELECT zdm_batch.zdm_scanned, zdm_batch.zdm_changed,
                        ARRAY[zdm_batch.zdm_end1::text];
END;
$zdm$

-- plan.start[11].top_level = false

-- plan.start[12].description
function copying each row change of the original into the shadow

-- plan.start[12].sql
CREATE FUNCTION zdm.shadow_sync_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (shadow sync): makes the row of public.zdm_shadow_m
-- with the same key equal to the row just written in public.orders, in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) 'public.orders'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        IF zdm.shadow_beyond_m(NEW.id) THEN
            -- A key after the last one the backfill copies: no batch copies it,
            -- so the target cannot hold it (and the notes need no probe).
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            VALUES (NEW.id,
                    NEW.customer_id,
                    NEW."Amount",
                    NEW.n,
                    NEW."Amount" * 100);
        ELSIF EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id)) THEN
            -- A key deleted before: the target may still hold a batch's late copy
            -- of the deleted row (until the settle removes it); this row replaces it.
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            VALUES (NEW.id,
                    NEW.customer_id,
                    NEW."Amount",
                    NEW.n,
                    NEW."Amount" * 100)
            ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                      "Amount" = EXCLUDED."Amount",
                      total_cents = EXCLUDED.total_cents;
        ELSE
            -- A new key: the target cannot hold it (its deletes follow the source's,
            -- and the backfill copies only rows that existed before).
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            VALUES (NEW.id,
                    NEW.customer_id,
                    NEW."Amount",
                    NEW.n,
                    NEW."Amount" * 100);
        END IF;
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        IF (OLD.id) OPERATOR(pg_catalog.=) (NEW.id) THEN
            UPDATE public.zdm_shadow_m
               SET customer_id = NEW.customer_id,
                   "Amount" = NEW."Amount",
                   total_cents = NEW."Amount" * 100
             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);
            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);
            END IF;
            RETURN NULL;
        ELSE
            -- the key changed: the row moves
            DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
            -- A batch that read the row before this delete may still copy it (whether
            -- or not a copy was just deleted): the key is noted, and the settle removes
            -- such a copy.
            INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
        VALUES (NEW.id,
                NEW.customer_id,
                NEW."Amount",
                NEW.n,
                NEW."Amount" * 100)
        ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                      "Amount" = EXCLUDED."Amount",
                      total_cents = EXCLUDED.total_cents;
        RETURN NULL;
    END IF;
    DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
    -- A batch that read the row before this delete may still copy it (whether
    -- or not a copy was just deleted): the key is noted, and the settle removes
    -- such a copy.
    INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);
    RETURN NULL;
END;
$zdm$

-- plan.start[12].top_level = false

-- plan.start[13].description
function copying each row change back into the old table after the swap

-- plan.start[13].sql
CREATE FUNCTION zdm.shadow_reverse_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $zdm$
-- pg_zdm migration m (reverse sync): makes the row of public.zdm_old_m
-- with the same key equal to the row just written in public.orders, in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) 'public.orders'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        -- A new key: the target cannot hold it (its deletes follow the source's,
        -- and the backfill copies only rows that existed before).
        INSERT INTO public.zdm_old_m (id, customer_id, "Amount", n) OVERRIDING SYSTEM VALUE
        VALUES (NEW.id,
                NEW.customer_id,
                NEW."Amount",
                NEW.n);
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        IF (OLD.id) OPERATOR(pg_catalog.=) (NEW.id) THEN
            UPDATE public.zdm_old_m
               SET customer_id = NEW.customer_id,
                   "Amount" = NEW."Amount"
             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);
            IF FOUND THEN
                RETURN NULL;
            END IF;
            -- not there (a target older than this row): insert it below
        ELSE
            -- the key changed: the row moves
            DELETE FROM public.zdm_old_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        INSERT INTO public.zdm_old_m (id, customer_id, "Amount", n) OVERRIDING SYSTEM VALUE
        VALUES (NEW.id,
                NEW.customer_id,
                NEW."Amount",
                NEW.n)
        ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                      "Amount" = EXCLUDED."Amount";
        RETURN NULL;
    END IF;
    DELETE FROM public.zdm_old_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
    RETURN NULL;
END;
$zdm$

-- plan.start[13].top_level = false

-- plan.start[14].description
function emptying the shadow (and the notes) when the original is truncated

-- plan.start[14].sql
CREATE FUNCTION zdm.shadow_truncate_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (shadow sync): a TRUNCATE of public.orders fires no
-- row trigger; the rows go from public.zdm_shadow_m, public.zdm_stale_m too, in the same transaction.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) 'public.orders'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    TRUNCATE public.zdm_shadow_m, public.zdm_stale_m;
    RETURN NULL;
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'pg_zdm: % (a TRUNCATE of %.% must also empty the table pg_zdm keeps for a rollback)',
        SQLERRM, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Other tables still reference that table: finish the migration first '
                     '(zdm.complete or zdm.rollback), or DELETE the rows.';
END;
$zdm$

-- plan.start[14].top_level = false

-- plan.start[15].description
function emptying the old table when the new one is truncated after the swap

-- plan.start[15].sql
CREATE FUNCTION zdm.shadow_reverse_truncate_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (reverse sync): a TRUNCATE of public.orders fires no
-- row trigger; the rows go from public.zdm_old_m too, in the same transaction.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) 'public.orders'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    TRUNCATE public.zdm_old_m;
    RETURN NULL;
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'pg_zdm: % (a TRUNCATE of %.% must also empty the table pg_zdm keeps for a rollback)',
        SQLERRM, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Other tables still reference that table: finish the migration first '
                     '(zdm.complete or zdm.rollback), or DELETE the rows.';
END;
$zdm$

-- plan.start[15].top_level = false

-- plan.start[16].description
trigger feeding the shadow from the original (waits for writers in flight, then every write is copied)

-- plan.start[16].lock.mode
SHARE_ROW_EXCLUSIVE

-- plan.start[16].lock.relation
public.orders

-- plan.start[16].sql
CREATE TRIGGER zdm_sync_m AFTER INSERT OR UPDATE OR DELETE ON public.orders FOR EACH ROW EXECUTE FUNCTION zdm.shadow_sync_m();
ALTER TABLE public.orders ENABLE ALWAYS TRIGGER zdm_sync_m

-- plan.start[16].top_level = false

-- plan.start[17].description
trigger following a TRUNCATE of the original (TRUNCATE fires no row trigger)

-- plan.start[17].lock.mode
SHARE_ROW_EXCLUSIVE

-- plan.start[17].lock.relation
public.orders

-- plan.start[17].sql
CREATE TRIGGER zdm_truncate_m AFTER TRUNCATE ON public.orders FOR EACH STATEMENT EXECUTE FUNCTION zdm.shadow_truncate_m();
ALTER TABLE public.orders ENABLE ALWAYS TRIGGER zdm_truncate_m

-- plan.start[17].top_level = false

-- plan.validate[0].description
the sync trigger notes only the deletes that find no copy (no batch copies rows any more)

-- plan.validate[0].sql
CREATE OR REPLACE FUNCTION zdm.shadow_sync_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (shadow sync): makes the row of public.zdm_shadow_m
-- with the same key equal to the row just written in public.orders, in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) 'public.orders'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        IF zdm.shadow_beyond_m(NEW.id) THEN
            -- A key after the last one the backfill copies: no batch copies it,
            -- so the target cannot hold it (and the notes need no probe).
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            VALUES (NEW.id,
                    NEW.customer_id,
                    NEW."Amount",
                    NEW.n,
                    NEW."Amount" * 100);
        ELSIF EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id)) THEN
            -- A key deleted before: the target may still hold a batch's late copy
            -- of the deleted row (until the settle removes it); this row replaces it.
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            VALUES (NEW.id,
                    NEW.customer_id,
                    NEW."Amount",
                    NEW.n,
                    NEW."Amount" * 100)
            ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                      "Amount" = EXCLUDED."Amount",
                      total_cents = EXCLUDED.total_cents;
        ELSE
            -- A new key: the target cannot hold it (its deletes follow the source's,
            -- and the backfill copies only rows that existed before).
            INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
            VALUES (NEW.id,
                    NEW.customer_id,
                    NEW."Amount",
                    NEW.n,
                    NEW."Amount" * 100);
        END IF;
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        IF (OLD.id) OPERATOR(pg_catalog.=) (NEW.id) THEN
            UPDATE public.zdm_shadow_m
               SET customer_id = NEW.customer_id,
                   "Amount" = NEW."Amount",
                   total_cents = NEW."Amount" * 100
             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);
            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);
            END IF;
            RETURN NULL;
        ELSE
            -- the key changed: the row moves
            DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
            IF NOT FOUND THEN
                -- the backfill is over; a transaction whose snapshot is older than the
                -- copy of this row cannot see it: the key is noted for the settle
                INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);
            END IF;
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        INSERT INTO public.zdm_shadow_m (id, customer_id, "Amount", n, total_cents) OVERRIDING SYSTEM VALUE
        VALUES (NEW.id,
                NEW.customer_id,
                NEW."Amount",
                NEW.n,
                NEW."Amount" * 100)
        ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                      "Amount" = EXCLUDED."Amount",
                      total_cents = EXCLUDED.total_cents;
        RETURN NULL;
    END IF;
    DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
    IF NOT FOUND THEN
        -- the backfill is over; a transaction whose snapshot is older than the
        -- copy of this row cannot see it: the key is noted for the settle
        INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);
    END IF;
    RETURN NULL;
END;
$zdm$

-- plan.validate[0].top_level = false

-- plan.validate[1].description
validate foreign key orders_customer_id_fkey of the shadow (reads and writes go on)

-- plan.validate[1].lock.mode
SHARE_UPDATE_EXCLUSIVE

-- plan.validate[1].lock.relation
public.zdm_shadow_m

-- plan.validate[1].sql
ALTER TABLE public.zdm_shadow_m VALIDATE CONSTRAINT orders_customer_id_fkey

-- plan.validate[1].top_level = false

