-- plan.backfill.batch_statements[0]
SELECT zdm_k.region, zdm_k."No", true
  FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_k
 WHERE (zdm_k.region, zdm_k."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
   AND (zdm_k.region, zdm_k."No") <= ($1[1]::pg_catalog.text, $1[2]::app.order_no)
 ORDER BY zdm_k.region, zdm_k."No"
OFFSET $2 - 1 LIMIT 1

-- plan.backfill.batch_statements[1]
INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
SELECT region,
       "No",
       parent_no
  FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
 WHERE (zdm_src.region, zdm_src."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
   AND (zdm_src.region, zdm_src."No") <= ($4[1]::pg_catalog.text, $4[2]::app.order_no)
   AND NOT EXISTS (SELECT FROM "My Schema".zdm_shadow_m AS zdm_t
                    WHERE (zdm_t.region, zdm_t."No") = (zdm_src.region, zdm_src."No")
                      AND (zdm_t.region, zdm_t."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
                      AND (zdm_t.region, zdm_t."No") <= ($4[1]::pg_catalog.text, $4[2]::app.order_no))

-- plan.backfill.batch_statements[2]
SELECT count(*)
  FROM (SELECT FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_k
         WHERE (zdm_k.region, zdm_k."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
           AND (zdm_k.region, zdm_k."No") <= ($1[1]::pg_catalog.text, $1[2]::app.order_no)
         ORDER BY zdm_k.region, zdm_k."No"
         LIMIT $2) AS zdm_left

-- plan.backfill.description
copy existing rows of My Schema.Order; DROP TABLE x into My Schema.zdm_shadow_m

-- plan.backfill.function
zdm.backfill_m

-- plan.backfill.key_columns[0]
region

-- plan.backfill.key_columns[1]
No

-- plan.backfill.table
"My Schema"."Order; DROP TABLE x"

-- plan.backfill.upper_bound_sql
SELECT ARRAY[region::text, "No"::text] FROM ONLY "My Schema"."Order; DROP TABLE x" ORDER BY region DESC, "No" DESC LIMIT 1

-- plan.complete[0].description
drop the reverse sync trigger

-- plan.complete[0].lock.mode
ACCESS_EXCLUSIVE

-- plan.complete[0].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.complete[0].sql
DROP TRIGGER IF EXISTS zdm_reverse_m ON "My Schema"."Order; DROP TABLE x"

-- plan.complete[0].top_level = false

-- plan.complete[1].description
drop the reverse truncate trigger

-- plan.complete[1].lock.mode
ACCESS_EXCLUSIVE

-- plan.complete[1].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.complete[1].sql
DROP TRIGGER IF EXISTS zdm_reverse_truncate_m ON "My Schema"."Order; DROP TABLE x"

-- plan.complete[1].top_level = false

-- plan.complete[2].description
drop the old table

-- plan.complete[2].lock.mode
ACCESS_EXCLUSIVE

-- plan.complete[2].lock.relation
"My Schema".zdm_old_m

-- plan.complete[2].sql
DROP TABLE IF EXISTS "My Schema".zdm_old_m

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
DROP TABLE IF EXISTS "My Schema".zdm_stale_m

-- plan.complete[6].top_level = false

-- plan.complete[7].description
give index zdm_shadow_m_pkey its original name Order; DROP TABLE x_pkey

-- plan.complete[7].sql
ALTER INDEX "My Schema".zdm_shadow_m_pkey RENAME TO "Order; DROP TABLE x_pkey"

-- plan.complete[7].top_level = false

-- plan.rollback[0].description
drop the trigger feeding the shadow

-- plan.rollback[0].lock.mode
ACCESS_EXCLUSIVE

-- plan.rollback[0].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.rollback[0].sql
DROP TRIGGER IF EXISTS zdm_sync_m ON "My Schema"."Order; DROP TABLE x"

-- plan.rollback[0].top_level = false

-- plan.rollback[1].description
drop the trigger following a TRUNCATE of the original

-- plan.rollback[1].lock.mode
ACCESS_EXCLUSIVE

-- plan.rollback[1].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.rollback[1].sql
DROP TRIGGER IF EXISTS zdm_truncate_m ON "My Schema"."Order; DROP TABLE x"

-- plan.rollback[1].top_level = false

-- plan.rollback[2].description
drop the shadow table

-- plan.rollback[2].lock.mode
ACCESS_EXCLUSIVE

-- plan.rollback[2].lock.relation
"My Schema".zdm_shadow_m

-- plan.rollback[2].sql
DROP TABLE IF EXISTS "My Schema".zdm_shadow_m

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
DROP TABLE IF EXISTS "My Schema".zdm_stale_m

-- plan.rollback[6].top_level = false

-- plan.shadow.column_pairs[0][0]
region

-- plan.shadow.column_pairs[0][1]
region

-- plan.shadow.column_pairs[1][0]
No

-- plan.shadow.column_pairs[1][1]
No

-- plan.shadow.column_pairs[2][0]
parent_no

-- plan.shadow.column_pairs[2][1]
parent_no

-- plan.shadow.compared_columns[0]
region

-- plan.shadow.compared_columns[1]
No

-- plan.shadow.compared_columns[2]
parent_no

-- plan.shadow.forward_trigger
zdm_sync_m

-- plan.shadow.index_names[0][0]
zdm_shadow_m_pkey

-- plan.shadow.index_names[0][1]
Order; DROP TABLE x_pkey

-- plan.shadow.indexes_after_copy = false

-- plan.shadow.not_compared = []

-- plan.shadow.not_valid_checks = []

-- plan.shadow.notes
"My Schema".zdm_stale_m

-- plan.shadow.old
"My Schema".zdm_old_m

-- plan.shadow.old_relname
zdm_old_m

-- plan.shadow.reverse_function
zdm.shadow_reverse_m

-- plan.shadow.reverse_trigger
zdm_reverse_m

-- plan.shadow.schema
"My Schema"

-- plan.shadow.settle_function
zdm.shadow_settle_m

-- plan.shadow.shadow
"My Schema".zdm_shadow_m

-- plan.shadow.shadow_relname
zdm_shadow_m

-- plan.shadow.table
"My Schema"."Order; DROP TABLE x"

-- plan.shadow.table_relname
Order; DROP TABLE x

-- plan.shadow.truncate_triggers.forward
zdm_truncate_m

-- plan.shadow.truncate_triggers.reverse
zdm_reverse_truncate_m

-- plan.shadow.truncate_triggers.reverse_function
zdm.shadow_reverse_truncate_m

-- plan.shadow.verify_diff_sql
WITH zdm_cmp AS MATERIALIZED (
    SELECT ROW(coalesce(s.zdm_k1, d.zdm_k1), coalesce(s.zdm_k2, d.zdm_k2))::text AS zdm_key,
           (s.zdm_k1 IS NULL OR d.zdm_k1 IS NULL OR s.zdm_h1 IS DISTINCT FROM d.zdm_h1 OR s.zdm_h2 IS DISTINCT FROM d.zdm_h2 OR s.zdm_h3 IS DISTINCT FROM d.zdm_h3) AS zdm_differs
      FROM (SELECT region::pg_catalog.text AS zdm_k1, "No"::app.order_no AS zdm_k2, pg_catalog.hashtextextended(((region)::pg_catalog.text)::text, 0) AS zdm_h1, pg_catalog.hashtextextended((("No")::app.order_no)::text, 0) AS zdm_h2, pg_catalog.hashtextextended(((parent_no)::app.order_no)::text, 0) AS zdm_h3 FROM ONLY "My Schema"."Order; DROP TABLE x") s
      FULL JOIN (SELECT region AS zdm_k1, "No" AS zdm_k2, pg_catalog.hashtextextended(region::text, 0) AS zdm_h1, pg_catalog.hashtextextended("No"::text, 0) AS zdm_h2, pg_catalog.hashtextextended(parent_no::text, 0) AS zdm_h3 FROM ONLY "My Schema".zdm_shadow_m) d
        ON s.zdm_k1 = d.zdm_k1 AND s.zdm_k2 = d.zdm_k2
)
SELECT count(*) FILTER (WHERE zdm_differs) AS differing_rows,
       ARRAY(SELECT zdm_key FROM zdm_cmp WHERE zdm_differs ORDER BY zdm_key LIMIT 5) AS sample_keys
  FROM zdm_cmp

-- plan.shadow.verify_pending_sql
SELECT s.zdm_rows, d.zdm_rows, s.zdm_sums, d.zdm_sums
  FROM (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((((region)::pg_catalog.text)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((region)::pg_catalog.text),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((("No")::app.order_no)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(("No")::app.order_no),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((((parent_no)::app.order_no)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((parent_no)::app.order_no)]::text[] AS zdm_sums
      FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_t, LATERAL (SELECT pg_catalog.hashtextextended(((("No")::app.order_no)::text) COLLATE pg_catalog."C", pg_catalog.hashtextextended((((region)::pg_catalog.text)::text) COLLATE pg_catalog."C", 0)) AS zdm_k) zdm_l
     WHERE NOT EXISTS (SELECT FROM "My Schema".zdm_stale_m AS zdm_n WHERE (zdm_n.region)::pg_catalog.text OPERATOR(pg_catalog.=) (zdm_t.region)::pg_catalog.text AND (zdm_n."No")::app.order_no OPERATOR(pg_catalog.=) (zdm_t."No")::app.order_no)) s,
       (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((region)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(region),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((("No")::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count("No"),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((parent_no)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(parent_no)]::text[] AS zdm_sums
      FROM ONLY "My Schema".zdm_shadow_m AS zdm_t, LATERAL (SELECT pg_catalog.hashtextextended((("No")::text) COLLATE pg_catalog."C", pg_catalog.hashtextextended(((region)::text) COLLATE pg_catalog."C", 0)) AS zdm_k) zdm_l
     WHERE NOT EXISTS (SELECT FROM "My Schema".zdm_stale_m AS zdm_n WHERE (zdm_n.region)::pg_catalog.text OPERATOR(pg_catalog.=) zdm_t.region AND (zdm_n."No")::app.order_no OPERATOR(pg_catalog.=) zdm_t."No")) d

-- plan.shadow.verify_sql
SELECT s.zdm_rows, d.zdm_rows, s.zdm_sums, d.zdm_sums
  FROM (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((((region)::pg_catalog.text)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((region)::pg_catalog.text),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((("No")::app.order_no)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(("No")::app.order_no),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((((parent_no)::app.order_no)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((parent_no)::app.order_no)]::text[] AS zdm_sums
      FROM ONLY "My Schema"."Order; DROP TABLE x", LATERAL (SELECT pg_catalog.hashtextextended(((("No")::app.order_no)::text) COLLATE pg_catalog."C", pg_catalog.hashtextextended((((region)::pg_catalog.text)::text) COLLATE pg_catalog."C", 0)) AS zdm_k) zdm_l) s,
       (SELECT count(*) AS zdm_rows, ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((region)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(region),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((("No")::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count("No"),
             coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((parent_no)::text) COLLATE pg_catalog."C", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(parent_no)]::text[] AS zdm_sums
      FROM ONLY "My Schema".zdm_shadow_m, LATERAL (SELECT pg_catalog.hashtextextended((("No")::text) COLLATE pg_catalog."C", pg_catalog.hashtextextended(((region)::text) COLLATE pg_catalog."C", 0)) AS zdm_k) zdm_l) d

-- plan.start[0].description
create the shadow table like the original

-- plan.start[0].lock.mode
ACCESS_SHARE

-- plan.start[0].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.start[0].sql
CREATE TABLE "My Schema".zdm_shadow_m (LIKE "My Schema"."Order; DROP TABLE x" INCLUDING ALL)

-- plan.start[0].top_level = false

-- plan.start[1].description
foreign key parent on the shadow, NOT VALID

-- plan.start[1].sql
ALTER TABLE "My Schema".zdm_shadow_m ADD CONSTRAINT parent FOREIGN KEY (region, parent_no) REFERENCES "My Schema".zdm_shadow_m (region, "No")  DEFERRABLE NOT VALID

-- plan.start[1].top_level = false

-- plan.start[2].description
table of the keys whose shadow row may be stale (see the settle function)

-- plan.start[2].sql
CREATE TABLE "My Schema".zdm_stale_m (region pg_catalog.text, "No" app.order_no)

-- plan.start[2].top_level = false

-- plan.start[3].description
index of the table of noted keys (probed by the trigger on inserts)

-- plan.start[3].sql
CREATE INDEX ON "My Schema".zdm_stale_m (region, "No")

-- plan.start[3].top_level = false

-- plan.start[4].description
comment on the table of noted keys

-- plan.start[4].sql
COMMENT ON TABLE "My Schema".zdm_stale_m IS 'pg_zdm migration m: keys of My Schema.Order; DROP TABLE x whose shadow row may be stale (deleted, or updated before it was copied; see zdm.shadow_settle_...)'

-- plan.start[4].top_level = false

-- plan.start[5].description
function settling the noted keys (shadow rows a batch copied before a delete or an update)

-- plan.start[5].sql
CREATE FUNCTION zdm.shadow_settle_m(zdm_copy_missing boolean DEFAULT true, zdm_no_other_writer boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql AS $zdm$
-- pg_zdm migration m: makes the rows of "My Schema".zdm_shadow_m whose keys
-- are noted in "My Schema".zdm_stale_m equal to the rows of "My Schema"."Order; DROP TABLE x" again: a backfill batch
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
    SELECT array_agg(ctid) INTO zdm_noted FROM "My Schema".zdm_stale_m;
    IF zdm_noted IS NULL THEN
        RETURN 0;
    END IF;
    IF zdm_no_other_writer THEN
        DELETE FROM "My Schema".zdm_shadow_m AS zdm_t
         USING "My Schema".zdm_stale_m AS zdm_n
         WHERE zdm_n.ctid = ANY (zdm_noted) AND (zdm_t.region, zdm_t."No") = (zdm_n.region, zdm_n."No");
        GET DIAGNOSTICS zdm_removed = ROW_COUNT;
        -- A new statement: writes committed since the notes were read are
        -- copied as they are now (their own notes stay for the next settle).
        INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
        SELECT region, "No", parent_no
          FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_s
         WHERE (zdm_s.region, zdm_s."No") IN (SELECT zdm_n.region, zdm_n."No" FROM "My Schema".zdm_stale_m AS zdm_n
                            WHERE zdm_n.ctid = ANY (zdm_noted));
        DELETE FROM "My Schema".zdm_stale_m WHERE ctid = ANY (zdm_noted);
        RETURN zdm_removed;
    END IF;
    -- Notes whose key has no row in the shadow: settled as they are (a
    -- batch copies the row later), or by a copy when the batches are over.
    SELECT array_agg(zdm_n.ctid) INTO zdm_missing
      FROM "My Schema".zdm_stale_m AS zdm_n
     WHERE zdm_n.ctid = ANY (zdm_noted)
       AND NOT EXISTS (SELECT FROM "My Schema".zdm_shadow_m AS zdm_t WHERE (zdm_t.region, zdm_t."No") = (zdm_n.region, zdm_n."No"));

    IF zdm_copy_missing AND zdm_missing IS NOT NULL THEN
        -- No batch will copy them any more (rows the original gained, or
        -- changed, while the shadow was written only by the batches): they
        -- come from the original as it is now. A writer's copy made meanwhile
        -- is newer and stays.
        INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
        SELECT region, "No", parent_no
          FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_s
         WHERE (zdm_s.region, zdm_s."No") IN (SELECT zdm_n.region, zdm_n."No" FROM "My Schema".zdm_stale_m AS zdm_n
                            WHERE zdm_n.ctid = ANY (zdm_missing))
        ON CONFLICT (region, "No") DO NOTHING;
    END IF;
    -- The shadow rows of the other notes that this call can lock, and their
    -- notes. A row a writer holds is left, with its note, for the next call.
    -- Only the rows locked here are judged below: a row a writer makes from
    -- now on is written in the same transaction as "My Schema"."Order; DROP TABLE x"'s, so it is right.
    SELECT array_agg(zdm_row), array_agg(zdm_note)
      INTO zdm_held_rows, zdm_held_notes
      FROM (SELECT zdm_t.ctid AS zdm_row, zdm_n.ctid AS zdm_note
              FROM "My Schema".zdm_stale_m AS zdm_n
              JOIN "My Schema".zdm_shadow_m AS zdm_t ON (zdm_t.region, zdm_t."No") = (zdm_n.region, zdm_n."No")
             WHERE zdm_n.ctid = ANY (zdm_noted)
               FOR UPDATE OF zdm_t SKIP LOCKED) AS zdm_held;
    zdm_settled := coalesce(zdm_missing, '{}') || coalesce(zdm_held_notes, '{}');
    IF zdm_held_rows IS NULL THEN
        DELETE FROM "My Schema".zdm_stale_m WHERE ctid = ANY (zdm_settled);
        RETURN 0;
    END IF;
    -- A new statement, so a new snapshot: every write to these rows committed
    -- before the locks is seen. A key inserted again since is in "My Schema"."Order; DROP TABLE x".
    DELETE FROM "My Schema".zdm_shadow_m AS zdm_t
     WHERE zdm_t.ctid = ANY (zdm_held_rows)
       AND NOT EXISTS (SELECT FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_s WHERE (zdm_s.region, zdm_s."No") = (zdm_t.region, zdm_t."No"));
    GET DIAGNOSTICS zdm_removed = ROW_COUNT;
    -- The others take the original's values (rows deleted and inserted again,
    -- rows updated before their copy). No change when they have them already.
    UPDATE "My Schema".zdm_shadow_m AS zdm_t
       SET (parent_no) = (SELECT parent_no
                         FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_s
                        WHERE (zdm_s.region, zdm_s."No") = (zdm_t.region, zdm_t."No"))
     WHERE zdm_t.ctid = ANY (zdm_held_rows)
       AND EXISTS (SELECT FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_s WHERE (zdm_s.region, zdm_s."No") = (zdm_t.region, zdm_t."No"));
    DELETE FROM "My Schema".zdm_stale_m WHERE ctid = ANY (zdm_settled);
    RETURN zdm_removed;
END;
$zdm$

-- plan.start[5].top_level = false

-- plan.start[6].description
backfill batch function

-- plan.start[6].sql
CREATE FUNCTION zdm.backfill_m(upper_bound text[], batch_size integer, last_key text[])
RETURNS TABLE (zdm_rows_scanned bigint, zdm_rows_changed bigint, zdm_last_key text[])
LANGUAGE plpgsql AS $zdm$
#variable_conflict use_column
-- pg_zdm migration m: one keyset batch of the backfill of "My Schema"."Order; DROP TABLE x"
-- (copy existing rows of My Schema.Order; DROP TABLE x into My Schema.zdm_shadow_m).
-- $1: key of the last row that existed when the backfill began (upper bound)
-- $2: batch size
-- $3: key of the last row of the previous batch, NULL for the first batch
<<zdm_batch>>
DECLARE
    zdm_end1 pg_catalog.text;
    zdm_end2 app.order_no;
    zdm_full boolean;
    zdm_scanned bigint;
    zdm_changed bigint;
BEGIN
    -- The batch ends $2 rows further along the key index, or at the upper bound.
    IF $3 IS NULL THEN
        SELECT zdm_k.region, zdm_k."No", true
          INTO zdm_batch.zdm_end1, zdm_batch.zdm_end2, zdm_batch.zdm_full
          FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_k
         WHERE (zdm_k.region, zdm_k."No") <= ($1[1]::pg_catalog.text, $1[2]::app.order_no)
         ORDER BY zdm_k.region, zdm_k."No"
        OFFSET $2 - 1 LIMIT 1;
    ELSE
        SELECT zdm_k.region, zdm_k."No", true
          INTO zdm_batch.zdm_end1, zdm_batch.zdm_end2, zdm_batch.zdm_full
          FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_k
         WHERE (zdm_k.region, zdm_k."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
           AND (zdm_k.region, zdm_k."No") <= ($1[1]::pg_catalog.text, $1[2]::app.order_no)
         ORDER BY zdm_k.region, zdm_k."No"
        OFFSET $2 - 1 LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        zdm_batch.zdm_full := false;
        zdm_batch.zdm_end1 := $1[1]::pg_catalog.text;
        zdm_batch.zdm_end2 := $1[2]::app.order_no;
    END IF;
    BEGIN
        IF $3 IS NULL THEN
            IF EXISTS (SELECT FROM "My Schema".zdm_shadow_m AS zdm_t
                        WHERE (zdm_t.region, zdm_t."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)) THEN
                INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
                SELECT region,
                       "No",
                       parent_no
                  FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
                 WHERE (zdm_src.region, zdm_src."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)
                   AND NOT EXISTS (SELECT FROM "My Schema".zdm_shadow_m AS zdm_t
                                    WHERE (zdm_t.region, zdm_t."No") = (zdm_src.region, zdm_src."No")
                                      AND (zdm_t.region, zdm_t."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2));
            ELSE
                INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
                SELECT region,
                       "No",
                       parent_no
                  FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
                 WHERE (zdm_src.region, zdm_src."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2);
            END IF;
        ELSE
            IF EXISTS (SELECT FROM "My Schema".zdm_shadow_m AS zdm_t
                        WHERE (zdm_t.region, zdm_t."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
                          AND (zdm_t.region, zdm_t."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)) THEN
                INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
                SELECT region,
                       "No",
                       parent_no
                  FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
                 WHERE (zdm_src.region, zdm_src."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
                   AND (zdm_src.region, zdm_src."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)
                   AND NOT EXISTS (SELECT FROM "My Schema".zdm_shadow_m AS zdm_t
                                    WHERE (zdm_t.region, zdm_t."No") = (zdm_src.region, zdm_src."No")
                                      AND (zdm_t.region, zdm_t."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
                                      AND (zdm_t.region, zdm_t."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2));
            ELSE
                INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
                SELECT region,
                       "No",
                       parent_no
                  FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
                 WHERE (zdm_src.region, zdm_src."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
                   AND (zdm_src.region, zdm_src."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2);
            END IF;
        END IF;
        GET DIAGNOSTICS zdm_changed = ROW_COUNT;
    EXCEPTION WHEN unique_violation THEN
        -- A writer's trigger copied one of these rows (inserted or moved to its
        -- key) after this batch's snapshot:
        -- the same batch again, leaving the rows already there alone.
        IF $3 IS NULL THEN
            INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
            SELECT region,
                   "No",
                   parent_no
              FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
             WHERE (zdm_src.region, zdm_src."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)
            ON CONFLICT (region, "No") DO NOTHING;
        ELSE
            INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
            SELECT region,
                   "No",
                   parent_no
              FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_src
             WHERE (zdm_src.region, zdm_src."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
               AND (zdm_src.region, zdm_src."No") <= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)
            ON CONFLICT (region, "No") DO NOTHING;
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
              FROM (SELECT FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_k
                     WHERE (zdm_k.region, zdm_k."No") <= ($1[1]::pg_catalog.text, $1[2]::app.order_no)
                     ORDER BY zdm_k.region, zdm_k."No"
                     LIMIT $2) AS zdm_left;
        ELSE
            SELECT count(*)
              INTO zdm_batch.zdm_scanned
              FROM (SELECT FROM ONLY "My Schema"."Order; DROP TABLE x" AS zdm_k
                     WHERE (zdm_k.region, zdm_k."No") > ($3[1]::pg_catalog.text, $3[2]::app.order_no)
                       AND (zdm_k.region, zdm_k."No") <= ($1[1]::pg_catalog.text, $1[2]::app.order_no)
                     ORDER BY zdm_k.region, zdm_k."No"
                     LIMIT $2) AS zdm_left;
        END IF;
    END IF;
    RETURN QUERY SELECT zdm_batch.zdm_scanned, zdm_batch.zdm_changed,
                        ARRAY[zdm_batch.zdm_end1::text, zdm_batch.zdm_end2::text];
END;
$zdm$

-- plan.start[6].top_level = false

-- plan.start[7].description
function copying each row change of the original into the shadow

-- plan.start[7].sql
CREATE FUNCTION zdm.shadow_sync_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (shadow sync): makes the row of "My Schema".zdm_shadow_m
-- with the same key equal to the row just written in "My Schema"."Order; DROP TABLE x", in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) '"My Schema"."Order; DROP TABLE x"'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        IF EXISTS (SELECT FROM "My Schema".zdm_stale_m WHERE (region, "No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No")) THEN
            -- A key deleted before: the target may still hold a batch's late copy
            -- of the deleted row (until the settle removes it); this row replaces it.
            INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
            VALUES (NEW.region,
                    NEW."No",
                    NEW.parent_no)
            ON CONFLICT (region, "No") DO UPDATE SET parent_no = EXCLUDED.parent_no;
        ELSE
            -- A new key: the target cannot hold it (its deletes follow the source's,
            -- and the backfill copies only rows that existed before).
            INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
            VALUES (NEW.region,
                    NEW."No",
                    NEW.parent_no);
        END IF;
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        IF (OLD.region, OLD."No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No") THEN
            UPDATE "My Schema".zdm_shadow_m
               SET parent_no = NEW.parent_no
             WHERE (region, "No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No");
            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                INSERT INTO "My Schema".zdm_stale_m (region, "No") VALUES (NEW.region, NEW."No");
            END IF;
            RETURN NULL;
        ELSE
            -- the key changed: the row moves
            DELETE FROM "My Schema".zdm_shadow_m WHERE (region, "No") OPERATOR(pg_catalog.=) (OLD.region, OLD."No");
            -- A batch that read the row before this delete may still copy it (whether
            -- or not a copy was just deleted): the key is noted, and the settle removes
            -- such a copy.
            INSERT INTO "My Schema".zdm_stale_m (region, "No") VALUES (OLD.region, OLD."No");
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
        VALUES (NEW.region,
                NEW."No",
                NEW.parent_no)
        ON CONFLICT (region, "No") DO UPDATE SET parent_no = EXCLUDED.parent_no;
        RETURN NULL;
    END IF;
    DELETE FROM "My Schema".zdm_shadow_m WHERE (region, "No") OPERATOR(pg_catalog.=) (OLD.region, OLD."No");
    -- A batch that read the row before this delete may still copy it (whether
    -- or not a copy was just deleted): the key is noted, and the settle removes
    -- such a copy.
    INSERT INTO "My Schema".zdm_stale_m (region, "No") VALUES (OLD.region, OLD."No");
    RETURN NULL;
END;
$zdm$

-- plan.start[7].top_level = false

-- plan.start[8].description
function copying each row change back into the old table after the swap

-- plan.start[8].sql
CREATE FUNCTION zdm.shadow_reverse_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (reverse sync): makes the row of "My Schema".zdm_old_m
-- with the same key equal to the row just written in "My Schema"."Order; DROP TABLE x", in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) '"My Schema"."Order; DROP TABLE x"'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        -- A new key: the target cannot hold it (its deletes follow the source's,
        -- and the backfill copies only rows that existed before).
        INSERT INTO "My Schema".zdm_old_m (region, "No", parent_no)
        VALUES (NEW.region,
                NEW."No",
                NEW.parent_no);
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        IF (OLD.region, OLD."No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No") THEN
            UPDATE "My Schema".zdm_old_m
               SET parent_no = NEW.parent_no
             WHERE (region, "No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No");
            IF FOUND THEN
                RETURN NULL;
            END IF;
            -- not there (a target older than this row): insert it below
        ELSE
            -- the key changed: the row moves
            DELETE FROM "My Schema".zdm_old_m WHERE (region, "No") OPERATOR(pg_catalog.=) (OLD.region, OLD."No");
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        INSERT INTO "My Schema".zdm_old_m (region, "No", parent_no)
        VALUES (NEW.region,
                NEW."No",
                NEW.parent_no)
        ON CONFLICT (region, "No") DO UPDATE SET parent_no = EXCLUDED.parent_no;
        RETURN NULL;
    END IF;
    DELETE FROM "My Schema".zdm_old_m WHERE (region, "No") OPERATOR(pg_catalog.=) (OLD.region, OLD."No");
    RETURN NULL;
END;
$zdm$

-- plan.start[8].top_level = false

-- plan.start[9].description
function emptying the shadow (and the notes) when the original is truncated

-- plan.start[9].sql
CREATE FUNCTION zdm.shadow_truncate_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (shadow sync): a TRUNCATE of "My Schema"."Order; DROP TABLE x" fires no
-- row trigger; the rows go from "My Schema".zdm_shadow_m, "My Schema".zdm_stale_m too, in the same transaction.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) '"My Schema"."Order; DROP TABLE x"'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    TRUNCATE "My Schema".zdm_shadow_m, "My Schema".zdm_stale_m;
    RETURN NULL;
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'pg_zdm: % (a TRUNCATE of %.% must also empty the table pg_zdm keeps for a rollback)',
        SQLERRM, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Other tables still reference that table: finish the migration first '
                     '(zdm.complete or zdm.rollback), or DELETE the rows.';
END;
$zdm$

-- plan.start[9].top_level = false

-- plan.start[10].description
function emptying the old table when the new one is truncated after the swap

-- plan.start[10].sql
CREATE FUNCTION zdm.shadow_reverse_truncate_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (reverse sync): a TRUNCATE of "My Schema"."Order; DROP TABLE x" fires no
-- row trigger; the rows go from "My Schema".zdm_old_m too, in the same transaction.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) '"My Schema"."Order; DROP TABLE x"'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    TRUNCATE "My Schema".zdm_old_m;
    RETURN NULL;
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'pg_zdm: % (a TRUNCATE of %.% must also empty the table pg_zdm keeps for a rollback)',
        SQLERRM, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Other tables still reference that table: finish the migration first '
                     '(zdm.complete or zdm.rollback), or DELETE the rows.';
END;
$zdm$

-- plan.start[10].top_level = false

-- plan.start[11].description
trigger feeding the shadow from the original (waits for writers in flight, then every write is copied)

-- plan.start[11].lock.mode
SHARE_ROW_EXCLUSIVE

-- plan.start[11].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.start[11].sql
CREATE TRIGGER zdm_sync_m AFTER INSERT OR UPDATE OR DELETE ON "My Schema"."Order; DROP TABLE x" FOR EACH ROW EXECUTE FUNCTION zdm.shadow_sync_m();
ALTER TABLE "My Schema"."Order; DROP TABLE x" ENABLE ALWAYS TRIGGER zdm_sync_m

-- plan.start[11].top_level = false

-- plan.start[12].description
trigger following a TRUNCATE of the original (TRUNCATE fires no row trigger)

-- plan.start[12].lock.mode
SHARE_ROW_EXCLUSIVE

-- plan.start[12].lock.relation
"My Schema"."Order; DROP TABLE x"

-- plan.start[12].sql
CREATE TRIGGER zdm_truncate_m AFTER TRUNCATE ON "My Schema"."Order; DROP TABLE x" FOR EACH STATEMENT EXECUTE FUNCTION zdm.shadow_truncate_m();
ALTER TABLE "My Schema"."Order; DROP TABLE x" ENABLE ALWAYS TRIGGER zdm_truncate_m

-- plan.start[12].top_level = false

-- plan.validate[0].description
the sync trigger notes only the deletes that find no copy (no batch copies rows any more)

-- plan.validate[0].sql
CREATE OR REPLACE FUNCTION zdm.shadow_sync_m() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$
-- pg_zdm migration m (shadow sync): makes the row of "My Schema".zdm_shadow_m
-- with the same key equal to the row just written in "My Schema"."Order; DROP TABLE x", in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) '"My Schema"."Order; DROP TABLE x"'::pg_catalog.regclass::pg_catalog.oid THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        IF EXISTS (SELECT FROM "My Schema".zdm_stale_m WHERE (region, "No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No")) THEN
            -- A key deleted before: the target may still hold a batch's late copy
            -- of the deleted row (until the settle removes it); this row replaces it.
            INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
            VALUES (NEW.region,
                    NEW."No",
                    NEW.parent_no)
            ON CONFLICT (region, "No") DO UPDATE SET parent_no = EXCLUDED.parent_no;
        ELSE
            -- A new key: the target cannot hold it (its deletes follow the source's,
            -- and the backfill copies only rows that existed before).
            INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
            VALUES (NEW.region,
                    NEW."No",
                    NEW.parent_no);
        END IF;
        RETURN NULL;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
        IF (OLD.region, OLD."No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No") THEN
            UPDATE "My Schema".zdm_shadow_m
               SET parent_no = NEW.parent_no
             WHERE (region, "No") OPERATOR(pg_catalog.=) (NEW.region, NEW."No");
            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                INSERT INTO "My Schema".zdm_stale_m (region, "No") VALUES (NEW.region, NEW."No");
            END IF;
            RETURN NULL;
        ELSE
            -- the key changed: the row moves
            DELETE FROM "My Schema".zdm_shadow_m WHERE (region, "No") OPERATOR(pg_catalog.=) (OLD.region, OLD."No");
            IF NOT FOUND THEN
                -- the backfill is over; a transaction whose snapshot is older than the
                -- copy of this row cannot see it: the key is noted for the settle
                INSERT INTO "My Schema".zdm_stale_m (region, "No") VALUES (OLD.region, OLD."No");
            END IF;
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        INSERT INTO "My Schema".zdm_shadow_m (region, "No", parent_no)
        VALUES (NEW.region,
                NEW."No",
                NEW.parent_no)
        ON CONFLICT (region, "No") DO UPDATE SET parent_no = EXCLUDED.parent_no;
        RETURN NULL;
    END IF;
    DELETE FROM "My Schema".zdm_shadow_m WHERE (region, "No") OPERATOR(pg_catalog.=) (OLD.region, OLD."No");
    IF NOT FOUND THEN
        -- the backfill is over; a transaction whose snapshot is older than the
        -- copy of this row cannot see it: the key is noted for the settle
        INSERT INTO "My Schema".zdm_stale_m (region, "No") VALUES (OLD.region, OLD."No");
    END IF;
    RETURN NULL;
END;
$zdm$

-- plan.validate[0].top_level = false

-- plan.validate[1].description
validate foreign key parent of the shadow (reads and writes go on)

-- plan.validate[1].lock.mode
SHARE_UPDATE_EXCLUSIVE

-- plan.validate[1].lock.relation
"My Schema".zdm_shadow_m

-- plan.validate[1].sql
ALTER TABLE "My Schema".zdm_shadow_m VALIDATE CONSTRAINT parent

-- plan.validate[1].top_level = false

