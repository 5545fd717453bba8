//! The swap: the shadow takes the table's name, and everything bound to the
//! old table's oid (views, foreign keys of other tables, sequences, grants,
//! RLS, policies, triggers, publications, replica identity, comment) is
//! re-pointed, in one short transaction under ACCESS EXCLUSIVE locks taken with
//! `lock_timeout` and retried with backoff (a lock queue never builds up behind us).
//!
//! Definitions are read *before* the renames, under `search_path = pg_catalog`,
//! so they name the table schema-qualified by its (unchanging) name: run after
//! the renames, the same text binds to the new table.
//!
//! What the swap changed is recorded (`SwapRecord`) for the two ways out:
//! - rollback swaps back: the old table was never changed except for its
//!   disabled user triggers and its sequences/publications, which are put back;
//!   the foreign keys other tables had on it were left in place (valid);
//! - complete validates the foreign keys added on the new table, drops the old
//!   ones and gives the new ones their names, then drops the old table.

use super::verify::shadow_plan;
use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::executor::{run_steps, with_lock_retry, RetryPolicy};
use crate::ident::{Ident, Literal};
use crate::migrations::store::{self, MigrationRow};
use crate::migrations::Phase;
use crate::plan::{LockMode, ShadowPlan, Step};
use crate::session::with_local_settings;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Instant;

/// What the swap changed, kept in `zdm.migrations.shadow -> 'swap'`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SwapRecord {
    /// User triggers disabled on the old table: (quoted name, pg_trigger.tgenabled).
    pub disabled_triggers: Vec<(String, String)>,
    /// Serial sequences whose ownership moved: (sequence, old column, new column), quoted.
    pub serial_sequences: Vec<(String, String, String)>,
    /// Identity sequences: (old table's, new table's), quoted.
    pub identity_sequences: Vec<(String, String)>,
    /// Publications the table was moved between (quoted names).
    pub publications: Vec<String>,
    /// Foreign keys of other tables, added on the new table NOT VALID.
    pub foreign_keys: Vec<IncomingForeignKey>,
    /// The views as they were defined on the original: a swap back recreates
    /// them from these texts (the ones read on the new table would keep casts
    /// the new column types put in).
    #[serde(default)]
    pub views: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncomingForeignKey {
    /// The referencing table, schema-qualified and quoted.
    pub table: String,
    /// Its original name (on the old table's constraint) and the temporary one.
    pub name: String,
    pub temporary: String,
    /// Whether the original was validated: one that was NOT VALID stays so.
    #[serde(default = "yes")]
    pub validated: bool,
}

fn yes() -> bool {
    true
}

/// A view to drop and recreate, read before the renames.
struct ViewDef {
    name: String,
    create: Vec<String>,
}

/// Sessions' `lock_timeout` / attempts for the swap, from the call or the GUCs.
pub fn policy(lock_timeout: Option<&str>, max_attempts: Option<i32>) -> ZdmResult<RetryPolicy> {
    let mut p = RetryPolicy::from_settings();
    if let Some(t) = lock_timeout {
        let ms: Option<f64> = if !t.is_empty() && t.trim().chars().all(|c| c.is_ascii_digit()) {
            t.trim().parse().ok()
        } else {
            // A bad duration raises (22007); caught here, refused below with our hint.
            crate::session::in_subtransaction(|| {
                Spi::get_one_with_args::<f64>("SELECT extract(epoch FROM $1::interval)::float8 * 1000", &[t.into()])
            })
            .ok()
            .and_then(|r| r.ok().flatten())
        };
        match ms {
            Some(ms) if ms >= 1.0 => p.lock_timeout_ms = ms as u64,
            _ => {
                return Err(ZdmError::invalid_parameter(format!("invalid lock_timeout \"{t}\""))
                    .hint("Give a duration of 1 ms or more, as for SET lock_timeout: '100ms', '1s', or a number of milliseconds."))
            }
        }
    }
    if let Some(n) = max_attempts {
        if n < 1 {
            return Err(
                ZdmError::invalid_parameter(format!("max_attempts must be at least 1, got {n}"))
                    .hint("Leave it NULL to use zdm.lock_attempts."),
            );
        }
        p.attempts = n as u32;
    }
    Ok(p)
}

/// `zdm.swap_tables()`.
pub fn swap(name: &str, policy: &RetryPolicy) -> ZdmResult<Value> {
    let m = store::get_for_update(name)?;
    let sp = shadow_plan(&m)?;
    if m.phase != Phase::Backfilled {
        let hint = match m.phase {
            Phase::Started | Phase::Backfilling => {
                format!("Finish the backfill first: CALL zdm.backfill({});", Literal::new(name))
            }
            Phase::Swapped => {
                "It is already swapped: complete it with zdm.complete(), or undo the swap with zdm.rollback().".into()
            }
            _ => "Start a new migration.".into(),
        };
        return Err(ZdmError::wrong_state(format!(
            "migration \"{name}\" is {}; swap_tables needs a finished backfill",
            m.phase
        ))
        .hint(hint));
    }
    require_feeding_trigger(&sp)?;
    // The last verify must have matched; without one, verify now (before any lock).
    let state = store::shadow_state(name)?;
    let verify = match state.get("verify") {
        Some(v) if v.get("backfilled") == Some(&json!(true)) => v.clone(),
        _ => verify_keeping_no_row_lock(&m)?,
    };
    if verify.get("matched") != Some(&json!(true)) {
        return Err(ZdmError::wrong_state(format!(
            "the last verify of migration \"{name}\" found differences: {} rows in {}, {} in the shadow, {} differing (keys {})",
            verify["source_rows"], sp.table, verify["shadow_rows"], verify["differing_rows"], verify["sample_keys"]
        ))
        .hint("Nothing was swapped. Look at the rows named, run SELECT zdm.verify(...) again once they are explained, or zdm.rollback() the migration."));
    }
    let locks = lock_order(&sp.table, &sp.shadow)?;
    let ((record, repointed, held_ms), report) = with_lock_retry(policy, &locks, "swap_tables", || {
        with_local_settings(
            &[("search_path", crate::privilege::FIXED_SEARCH_PATH.to_string())],
            || {
                take_locks(&locks);
                let locked_at = Instant::now();
                // No writer is in flight under the lock, so every delete is committed and
                // its note visible: the last copies of deleted rows go now. The settle
                // writes the shadow (and fires its triggers): as the table's owner.
                // The statements after it change catalog entries only, some of other
                // roles' objects (views, foreign keys): with the caller's rights.
                if let Some(settle) = &sp.settle_function {
                    crate::privilege::as_table_owner(&sp.table, || Spi::run(&format!("SELECT {settle}(true)")))
                        .unwrap_or_else(|e| e.raise())
                        .expect("settle");
                }
                let (statements, record, repointed) = forward_statements(&m, &sp).unwrap_or_else(|e| e.raise());
                for sql in &statements {
                    Spi::run(sql).expect("swap statement");
                }
                (record, repointed, locked_at.elapsed().as_secs_f64() * 1000.0)
            },
        )
    })?;
    let result = json!({
        "migration": name,
        "attempts": report.attempts,
        "lock_wait_ms": (report.waited_ms + (report.held_ms - held_ms).max(0.0)).round(),
        "lock_held_ms": (held_ms * 10.0).round() / 10.0,
        "repointed": repointed,
        "foreign_keys_to_validate": record.foreign_keys.iter().map(|f| format!("{}.{}", f.table, f.temporary)).collect::<Vec<_>>(),
        "next": format!("SELECT zdm.complete({}); once the new table has proved itself (zdm.rollback() swaps back)", Literal::new(name)),
    });
    store::set_shadow_state(name, "swap", serde_json::to_value(&record).expect("record serializes"))?;
    store::move_phase(&m, Phase::Swapped, "swap", Some(result.clone()))?;
    Ok(result)
}

/// The verify a swap runs when none was run before: in a subtransaction rolled
/// back at once (its result is recorded again after), so that the row locks
/// its settle takes on the shadow are gone before the swap waits for its
/// table locks. Kept, they made writers that need those rows wait for the
/// swap while the swap waited for them, on every attempt until it gave up.
/// The settle under the swap's locks does that work again.
fn verify_keeping_no_row_lock(m: &MigrationRow) -> ZdmResult<Value> {
    let outcome = crate::session::in_rolled_back_subtransaction(|| {
        crate::privilege::as_table_owner(&m.table_name, || super::verify::verify(&m.name, true))
    });
    let result = match outcome {
        Ok(result) => result??,
        Err(e) => e.rethrow(),
    };
    store::set_shadow_state(&m.name, "verify", result.clone())?;
    store::log_event(&m.name, "verify", None, None, Some(result.clone()))?;
    Ok(result)
}

/// What the swap (or the swap back) locks, in the order the sessions that use
/// those relations lock them, so that none of them holds one while waiting
/// for another that the swap holds: the views on `table` first (the outermost
/// first: a query on a view locks it, then what it reads), then `table` and
/// its twin (`other`: the shadow, or the old table), ACCESS EXCLUSIVE; then
/// the tables whose foreign keys are re-pointed, SHARE ROW EXCLUSIVE (what
/// adding a foreign key takes).
pub fn lock_order(table: &str, other: &str) -> ZdmResult<Vec<(String, LockMode)>> {
    let views = rows(
        &format!(
            "{VIEWS_ON_TABLE}
         SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
           FROM (SELECT oid, max(depth) AS depth FROM v GROUP BY oid) v
           JOIN pg_catalog.pg_class c ON c.oid = v.oid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          ORDER BY v.depth DESC, c.oid"
        ),
        &[table.into()],
        |r| text(r, 1),
    )?;
    let referencing = rows(
        "SELECT DISTINCT pg_catalog.format('%I.%I', n.nspname, c.relname), c.oid
           FROM pg_catalog.pg_constraint con
           JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE con.contype = 'f' AND con.confrelid = $1::regclass AND con.conrelid <> con.confrelid
          ORDER BY c.oid",
        &[table.into()],
        |r| text(r, 1),
    )?;
    let mut locks: Vec<(String, LockMode)> = views.into_iter().map(|v| (v, LockMode::AccessExclusive)).collect();
    locks.push((table.to_string(), LockMode::AccessExclusive));
    locks.push((other.to_string(), LockMode::AccessExclusive));
    locks.extend(referencing.into_iter().map(|t| (t, LockMode::ShareRowExclusive)));
    Ok(locks)
}

/// `LOCK TABLE` of each relation in turn, in the order given.
fn take_locks(locks: &[(String, LockMode)]) {
    for (relation, mode) in locks {
        Spi::run(&format!("LOCK TABLE {relation} IN {} MODE", mode.as_sql())).expect("LOCK");
    }
}

/// 55000 unless the trigger feeding the shadow is there and fires for every
/// write (`ENABLE ALWAYS`): writes it missed never reached the shadow, and a
/// swap would lose them.
fn require_feeding_trigger(sp: &ShadowPlan) -> ZdmResult<()> {
    let enabled: Option<String> = crate::session::get_optional(
        "SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t
          WHERE t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
            AND t.tgname OPERATOR(pg_catalog.=) $2",
        &[sp.table.as_str().into(), unquoted(&sp.forward_trigger).into()],
    )
    .map_err(spi_err)?;
    let problem = match enabled.as_deref() {
        Some("A") => return Ok(()),
        None => "is missing",
        Some("D") => "is disabled",
        Some(_) => "does not fire for every write (it is not ENABLE ALWAYS)",
    };
    Err(ZdmError::wrong_state(format!(
        "the trigger {} feeding the shadow {} of {} {problem}",
        sp.forward_trigger, sp.shadow, sp.table
    ))
    .detail("Writes it did not see never reached the shadow; swapping it in would lose them.")
    .hint(format!(
        "Nothing was swapped. Roll the migration back and start it again, or, if the trigger is there: \
         ALTER TABLE {} ENABLE ALWAYS TRIGGER {}; then run zdm.verify() again before the swap.",
        sp.table, sp.forward_trigger
    )))
}

fn rows<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
    f: impl Fn(&pgrx::spi::SpiHeapTupleData) -> Result<T, pgrx::spi::Error>,
) -> ZdmResult<Vec<T>> {
    Spi::connect(|c| c.select(sql, None, args)?.map(|r| f(&r)).collect::<Result<Vec<T>, _>>()).map_err(spi_err)
}

fn text(r: &pgrx::spi::SpiHeapTupleData, i: usize) -> Result<String, pgrx::spi::Error> {
    Ok(r.get::<String>(i)?.unwrap_or_default())
}

/// `v(oid, depth)`: the views on table `$1` and the views on those, with how
/// deep each stands (a view on a view on the table: 2), maybe more than once.
const VIEWS_ON_TABLE: &str = "WITH RECURSIVE v(oid, depth) AS (
             SELECT DISTINCT r.ev_class, 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
              WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
                AND d.refobjid = $1::regclass AND r.ev_class <> $1::regclass
             UNION ALL
             SELECT r.ev_class, v.depth + 1 FROM v JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass
                    AND d.refobjid = v.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.ev_class <> v.oid
              WHERE v.depth < 100)";

/// Views on the table (and views on those), dependencies first, with all it
/// takes to create them again: definition, options, owner, grants, comments.
fn views_on(table: &str) -> ZdmResult<Vec<ViewDef>> {
    let list = rows(
        &format!(
            "{VIEWS_ON_TABLE}
         SELECT pg_catalog.format('%I.%I', n.nspname, c.relname),
                pg_catalog.pg_get_viewdef(c.oid),
                ARRAY(SELECT pg_catalog.format('%I = %L', o.option_name, o.option_value) FROM pg_catalog.pg_options_to_table(c.reloptions) o),
                pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner)),
                c.relacl IS NOT NULL,
                ARRAY(SELECT pg_catalog.format('%s TO %s%s', a.privilege_type,
                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                        FROM pg_catalog.aclexplode(c.relacl) a),
                pg_catalog.quote_literal(pg_catalog.obj_description(c.oid, 'pg_class')),
                ARRAY(SELECT pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', n.nspname, c.relname, a.attname, d.description)
                        FROM pg_catalog.pg_description d JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
                       WHERE d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid = c.oid AND d.objsubid > 0)
           FROM (SELECT oid, max(depth) AS depth FROM v GROUP BY oid) v
           JOIN pg_catalog.pg_class c ON c.oid = v.oid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          ORDER BY v.depth, c.oid"
        ),
        &[table.into()],
        |r| {
            Ok((
                text(r, 1)?,
                text(r, 2)?,
                r.get::<Vec<String>>(3)?.unwrap_or_default(),
                text(r, 4)?,
                r.get::<bool>(5)?.unwrap_or(false),
                r.get::<Vec<String>>(6)?.unwrap_or_default(),
                r.get::<String>(7)?,
                r.get::<Vec<String>>(8)?.unwrap_or_default(),
            ))
        },
    )?;
    Ok(list
        .into_iter()
        .map(
            |(name, def, options, owner, has_acl, grants, comment, column_comments)| {
                let with = if options.is_empty() {
                    String::new()
                } else {
                    format!(" WITH ({})", options.join(", "))
                };
                let mut create = vec![
                    format!("CREATE VIEW {name}{with} AS {}", def.trim_end().trim_end_matches(';')),
                    format!("ALTER VIEW {name} OWNER TO {owner}"),
                ];
                create.extend(acl_statements(&name, &owner, has_acl, &grants));
                if let Some(c) = comment {
                    create.push(format!("COMMENT ON VIEW {name} IS {c}"));
                }
                create.extend(column_comments);
                ViewDef { name, create }
            },
        )
        .collect())
}

/// Grants exactly as they were: a relation with an explicit ACL starts from
/// nothing (even for its owner), then gets each privilege back.
fn acl_statements(object: &str, owner: &str, has_acl: bool, grants: &[String]) -> Vec<String> {
    if !has_acl {
        return Vec::new();
    }
    let mut out = vec![format!("REVOKE ALL ON {object} FROM {owner}")];
    for g in grants {
        let (privilege, rest) = g.split_once(" TO ").expect("formatted as '<privilege> TO <role>'");
        out.push(format!("GRANT {privilege} ON {object} TO {rest}"));
    }
    out
}

/// The swap's statements as they are gathered: what runs before the renames
/// (on the old table under its name), what runs after (on the new table, which
/// then has the name), what the swap back will need, and a line per dependent
/// for the report.
struct Script<'a> {
    sp: &'a ShadowPlan,
    /// The live table's name: the old table before the renames, the new one after.
    t: &'a str,
    pre: Vec<String>,
    post: Vec<String>,
    record: SwapRecord,
    repointed: Vec<String>,
}

impl<'a> Script<'a> {
    fn new(sp: &'a ShadowPlan) -> Self {
        Script {
            sp,
            t: &sp.table,
            pre: Vec::new(),
            post: Vec::new(),
            record: SwapRecord::default(),
            repointed: Vec::new(),
        }
    }

    /// The shadow column an original column was copied into (raw names).
    fn pair(&self, orig: &str) -> Option<String> {
        self.sp
            .column_pairs
            .iter()
            .find(|(o, _)| o == orig)
            .map(|(_, s)| s.clone())
    }

    /// Views are dropped before the renames and created again after them.
    fn views(&mut self, views: &[ViewDef]) {
        if !views.is_empty() {
            let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
            self.pre
                .push(format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", names.join(", ")));
            self.pre.push(format!("DROP VIEW {}", names.join(", ")));
        }
        for v in views {
            self.post.extend(v.create.iter().cloned());
            self.repointed.push(format!("view {}", v.name));
            self.record.views.push((v.name.clone(), v.create.clone()));
        }
    }

    /// User triggers: recreated on the new table, disabled on the old one (the
    /// reverse sync writes there and must not fire them a second time).
    fn user_triggers(&mut self) -> ZdmResult<()> {
        let t = self.t;
        let triggers = rows(
            "SELECT pg_catalog.quote_ident(tgname), pg_catalog.pg_get_triggerdef(oid), tgenabled::text
               FROM pg_catalog.pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal AND tgname <> ALL ($2)
              ORDER BY tgname",
            &[t.into(), own_triggers(self.sp).into()],
            |r| Ok((text(r, 1)?, text(r, 2)?, text(r, 3)?)),
        )?;
        for (name, def, enabled) in triggers {
            if enabled != "D" {
                self.pre.push(format!("ALTER TABLE {t} DISABLE TRIGGER {name}"));
                self.record.disabled_triggers.push((name.clone(), enabled.clone()));
            }
            self.post.push(def);
            match enabled.as_str() {
                "D" => self.post.push(format!("ALTER TABLE {t} DISABLE TRIGGER {name}")),
                "R" => self.post.push(format!("ALTER TABLE {t} ENABLE REPLICA TRIGGER {name}")),
                "A" => self.post.push(format!("ALTER TABLE {t} ENABLE ALWAYS TRIGGER {name}")),
                _ => {}
            }
            self.repointed.push(format!("trigger {name}"));
        }
        Ok(())
    }

    /// Serial sequences change owner (the old table's drop must not take them
    /// along); identity ones carry their position over.
    fn sequences(&mut self) -> ZdmResult<()> {
        let t = self.t;
        let serials = rows(
            "SELECT pg_catalog.format('%I.%I', sn.nspname, s.relname), a.attname::text
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype = 'a'",
            &[t.into()],
            |r| Ok((text(r, 1)?, text(r, 2)?)),
        )?;
        for (seq, col) in serials {
            if let Some(new_col) = self.pair(&col) {
                let (oc, nc) = (
                    Ident::new(col.as_str()).to_string(),
                    Ident::new(new_col.as_str()).to_string(),
                );
                self.post.push(format!("ALTER SEQUENCE {seq} OWNED BY {t}.{nc}"));
                self.repointed.push(format!("sequence {seq} (owned by {t}.{nc})"));
                self.record.serial_sequences.push((seq, oc, nc));
            }
        }
        for (o, s) in &self.sp.column_pairs {
            let seqs: Vec<(Option<String>, Option<String>)> = rows(
                "SELECT pg_catalog.pg_get_serial_sequence($1, $2), pg_catalog.pg_get_serial_sequence($3, $4)
                  WHERE EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND attidentity <> '')",
                &[t.into(), o.as_str().into(), self.sp.shadow.as_str().into(), s.as_str().into()],
                |r| Ok((r.get::<String>(1)?, r.get::<String>(2)?)),
            )?;
            for (old_seq, new_seq) in seqs {
                if let (Some(old_seq), Some(new_seq)) = (old_seq, new_seq) {
                    // After the renames the old sequence belongs to the old table;
                    // its name is unchanged, so it is read by name here.
                    self.post.push(setval_from(&new_seq, &old_seq));
                    self.repointed
                        .push(format!("identity sequence {new_seq} (continues from {old_seq})"));
                    self.record.identity_sequences.push((old_seq, new_seq));
                }
            }
        }
        Ok(())
    }

    /// Grants (table and columns), RLS, policies, comment, replica identity.
    fn access(&mut self) -> ZdmResult<()> {
        let t = self.t;
        let (owner, has_acl, grants, rls, force, comment, replident, replident_index) = Spi::connect(|c| {
            let r = c
                .select(
                    "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner)), c.relacl IS NOT NULL,
                            ARRAY(SELECT pg_catalog.format('%s TO %s%s', a.privilege_type,
                                         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                                         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                                    FROM pg_catalog.aclexplode(c.relacl) a),
                            c.relrowsecurity, c.relforcerowsecurity,
                            pg_catalog.quote_literal(pg_catalog.obj_description(c.oid, 'pg_class')),
                            c.relreplident::text,
                            (SELECT ic.relname::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                              WHERE i.indrelid = c.oid AND i.indisreplident)
                       FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass",
                    Some(1),
                    &[t.into()],
                )?
                .first();
            Ok::<_, pgrx::spi::Error>((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<bool>(2)?.unwrap_or(false),
                r.get::<Vec<String>>(3)?.unwrap_or_default(),
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<bool>(5)?.unwrap_or(false),
                r.get::<String>(6)?,
                r.get::<String>(7)?.unwrap_or_default(),
                r.get::<String>(8)?,
            ))
        })
        .map_err(spi_err)?;
        let acl = acl_statements(t, &owner, has_acl, &grants);
        if !acl.is_empty() {
            self.repointed.push(format!("grants on {t} ({})", grants.join(", ")));
        }
        self.post.extend(acl);
        let column_grants = rows(
            "SELECT a.attname::text, pg_catalog.format('%s TO %s%s', x.privilege_type,
                    CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END,
                    CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
               FROM pg_catalog.pg_attribute a, pg_catalog.aclexplode(a.attacl) x
              WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL",
            &[t.into()],
            |r| Ok((text(r, 1)?, text(r, 2)?)),
        )?;
        for (col, g) in column_grants {
            if let Some(new_col) = self.pair(&col) {
                let (privilege, rest) = g.split_once(" TO ").expect("formatted");
                self.post.push(format!(
                    "GRANT {privilege} ({}) ON {t} TO {rest}",
                    Ident::new(new_col.as_str())
                ));
                self.repointed
                    .push(format!("column grant {privilege} ({new_col}) TO {rest}"));
            }
        }
        if rls {
            self.post.push(format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY"));
            self.repointed.push("row level security".into());
        }
        if force {
            self.post.push(format!("ALTER TABLE {t} FORCE ROW LEVEL SECURITY"));
        }
        let policies = rows(
            "SELECT pg_catalog.format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, $1,
                        CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                        CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                        (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END, ', ')
                           FROM unnest(p.polroles) r),
                        ' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')',
                        ' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')'),
                    pg_catalog.quote_ident(p.polname)
               FROM pg_catalog.pg_policy p WHERE p.polrelid = $1::regclass ORDER BY p.polname",
            &[t.into()],
            |r| Ok((text(r, 1)?, text(r, 2)?)),
        )?;
        for (sql, name) in policies {
            self.post.push(sql);
            self.repointed.push(format!("policy {name}"));
        }
        if let Some(c) = comment {
            self.post.push(format!("COMMENT ON TABLE {t} IS {c}"));
        }
        match (replident.as_str(), replident_index) {
            ("n", _) => self.post.push(format!("ALTER TABLE {t} REPLICA IDENTITY NOTHING")),
            ("f", _) => self.post.push(format!("ALTER TABLE {t} REPLICA IDENTITY FULL")),
            ("i", Some(idx)) => {
                let shadow_idx = self
                    .sp
                    .index_names
                    .iter()
                    .find(|(_, o)| *o == idx)
                    .map(|(s, _)| s.clone())
                    .ok_or_else(|| {
                        ZdmError::new(
                            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                            format!("the replica identity index {idx} of {t} has no copy in the shadow"),
                        )
                        .hint("Keep the index in the shadow, or change the replica identity first.")
                    })?;
                self.post.push(format!(
                    "ALTER TABLE {t} REPLICA IDENTITY USING INDEX {}",
                    Ident::new(shadow_idx.as_str())
                ));
            }
            _ => {}
        }
        if replident != "d" {
            self.repointed.push("replica identity".into());
        }
        Ok(())
    }

    /// Publications publish the new table instead of the old one.
    fn publications(&mut self) -> ZdmResult<()> {
        let t = self.t;
        let publications = rows(
            "SELECT pg_catalog.quote_ident(p.pubname), pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL
               FROM pg_catalog.pg_publication_rel pr
               JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1::regclass ORDER BY 1",
            &[t.into()],
            |r| Ok((text(r, 1)?, r.get::<bool>(2)?.unwrap_or(false))),
        )?;
        if let Some((p, _)) = publications.iter().find(|(_, filtered)| *filtered) {
            // A plain ADD TABLE would publish every row and column of the new table.
            return Err(ZdmError::not_supported(format!(
                "publication {p} publishes {t} with a row filter or a column list, which the swap cannot carry over"
            ))
            .hint("Nothing was swapped. Drop the table from the publication for the swap and add it back after, \
                   with its filter and columns (ALTER PUBLICATION ... ADD TABLE ... (columns) WHERE (...)), or roll back."));
        }
        for (p, _) in publications {
            self.post
                .push(format!("ALTER PUBLICATION {p} DROP TABLE {}", self.sp.old));
            self.post.push(format!("ALTER PUBLICATION {p} ADD TABLE {t}"));
            self.repointed.push(format!("publication {p}"));
            self.record.publications.push(p);
        }
        Ok(())
    }

    /// Foreign keys of other tables: a twin on the new table, NOT VALID
    /// (checked by complete); the original stays on the old table, still
    /// valid, for a swap back.
    fn incoming_foreign_keys(&mut self, migration: &str) -> ZdmResult<()> {
        let fks = rows(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.quote_ident(con.conname),
                    pg_catalog.pg_get_constraintdef(con.oid), con.convalidated
               FROM pg_catalog.pg_constraint con
               JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE con.contype = 'f' AND con.confrelid = $1::regclass AND con.conrelid <> con.confrelid
              ORDER BY con.oid",
            &[self.t.into()],
            |r| Ok((text(r, 1)?, text(r, 2)?, text(r, 3)?, r.get::<bool>(4)?.unwrap_or(true))),
        )?;
        for (i, (table, name, def, validated)) in fks.into_iter().enumerate() {
            let temporary = Ident::new(crate::ops::generated_name(&format!("zdm_fk{}", i + 1), migration));
            let def = def.trim_end_matches(" NOT VALID");
            self.post.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {temporary} {def} NOT VALID"
            ));
            self.repointed
                .push(format!("foreign key {name} of {table} (as {temporary} until complete)"));
            self.record.foreign_keys.push(IncomingForeignKey {
                table,
                name,
                temporary: temporary.to_string(),
                validated,
            });
        }
        Ok(())
    }

    /// Everything in order: before the renames, the renames, after them.
    fn finish(self) -> (Vec<String>, SwapRecord, Vec<String>) {
        let sp = self.sp;
        let mut all = self.pre;
        all.push(format!(
            "ALTER TABLE {} RENAME TO {}",
            sp.table,
            Ident::new(sp.old_relname.as_str())
        ));
        all.push(format!(
            "ALTER TABLE {} RENAME TO {}",
            sp.shadow,
            Ident::new(sp.table_relname.as_str())
        ));
        all.extend(self.post);
        (all, self.record, self.repointed)
    }
}

/// The statements of the swap, in order, read under the locks.
fn forward_statements(m: &MigrationRow, sp: &ShadowPlan) -> ZdmResult<(Vec<String>, SwapRecord, Vec<String>)> {
    let mut script = Script::new(sp);
    let views = views_on(&sp.table)?;
    script
        .pre
        .push(format!("DROP TRIGGER IF EXISTS {} ON {}", sp.forward_trigger, sp.table));
    if let Some(tt) = &sp.truncate_triggers {
        script
            .pre
            .push(format!("DROP TRIGGER IF EXISTS {} ON {}", tt.forward, sp.table));
    }
    // From here on only rows the original accepted reach the shadow.
    for check in &sp.not_valid_checks {
        script.pre.push(format!("ALTER TABLE {} {check}", sp.shadow));
    }
    script.user_triggers()?;
    script.sequences()?;
    script.access()?;
    script.publications()?;
    script.views(&views);
    script.incoming_foreign_keys(&m.name)?;
    script.post.push(format!(
        "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
        sp.reverse_trigger, sp.table, sp.reverse_function
    ));
    // Also for writes under session_replication_role = replica (see `sqlgen::fire_always`).
    script.post.push(format!(
        "ALTER TABLE {} ENABLE ALWAYS TRIGGER {}",
        sp.table, sp.reverse_trigger
    ));
    if let Some(tt) = &sp.truncate_triggers {
        script.post.push(format!(
            "CREATE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}()",
            tt.reverse, sp.table, tt.reverse_function
        ));
        script
            .post
            .push(format!("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}", sp.table, tt.reverse));
    }
    Ok(script.finish())
}

/// `setval` of `target` to where `source` stands (its own position, not max(id)).
fn setval_from(target: &str, source: &str) -> String {
    format!(
        "SELECT pg_catalog.setval({}::regclass, s.last_value, s.is_called) FROM {source} s",
        Literal::new(target)
    )
}

/// pg_zdm's own triggers on the original (raw names): the swap does not
/// carry them to the new table as it does the user's.
fn own_triggers(sp: &ShadowPlan) -> Vec<String> {
    let mut names = vec![unquoted(&sp.forward_trigger)];
    if let Some(tt) = &sp.truncate_triggers {
        names.push(unquoted(&tt.forward));
    }
    names
}

/// A quoted identifier's raw spelling, for comparing with pg_catalog names.
fn unquoted(quoted: &str) -> String {
    if let Some(inner) = quoted.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        inner.replace("\"\"", "\"")
    } else {
        quoted.to_string()
    }
}

/// Rollback after the swap: the old table takes its name back, with its
/// triggers, sequences, publications and views; the new table is the shadow
/// again (the plan's rollback steps then drop it).
pub fn swap_back(m: &MigrationRow, policy: &RetryPolicy) -> ZdmResult<Value> {
    let sp = shadow_plan(m)?;
    let record: SwapRecord = serde_json::from_value(store::shadow_state(&m.name)?["swap"].clone()).unwrap_or_default();
    let t = sp.table.clone();
    let locks = lock_order(&t, &sp.old)?;
    // Catalog changes only, some of other roles' objects: with the caller's rights.
    let (held_ms, report) = crate::privilege::as_role(crate::privilege::caller(), || {
        with_lock_retry(policy, &locks, "swap back", || {
            with_local_settings(
                &[("search_path", crate::privilege::FIXED_SEARCH_PATH.to_string())],
                || {
                    take_locks(&locks);
                    let locked_at = Instant::now();
                    let views = views_on(&t).unwrap_or_else(|e| e.raise());
                    let mut sql = Vec::new();
                    if !views.is_empty() {
                        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
                        sql.push(format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", names.join(", ")));
                        sql.push(format!("DROP VIEW {}", names.join(", ")));
                    }
                    for f in &record.foreign_keys {
                        sql.push(format!(
                            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                            f.table, f.temporary
                        ));
                    }
                    sql.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", sp.reverse_trigger));
                    if let Some(tt) = &sp.truncate_triggers {
                        sql.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", tt.reverse));
                    }
                    sql.push(format!(
                        "ALTER TABLE {t} RENAME TO {}",
                        Ident::new(sp.shadow_relname.as_str())
                    ));
                    sql.push(format!(
                        "ALTER TABLE {} RENAME TO {}",
                        sp.old,
                        Ident::new(sp.table_relname.as_str())
                    ));
                    for (name, state) in &record.disabled_triggers {
                        let how = match state.as_str() {
                            "R" => "ENABLE REPLICA",
                            "A" => "ENABLE ALWAYS",
                            _ => "ENABLE",
                        };
                        sql.push(format!("ALTER TABLE {t} {how} TRIGGER {name}"));
                    }
                    for (seq, old_col, _) in &record.serial_sequences {
                        sql.push(format!("ALTER SEQUENCE {seq} OWNED BY {t}.{old_col}"));
                    }
                    for (old_seq, new_seq) in &record.identity_sequences {
                        sql.push(setval_from(old_seq, new_seq));
                    }
                    for p in &record.publications {
                        sql.push(format!("ALTER PUBLICATION {p} DROP TABLE {}", sp.shadow));
                        sql.push(format!("ALTER PUBLICATION {p} ADD TABLE {t}"));
                    }
                    // The original definitions first (dependencies first, as recorded),
                    // then any view created on the new table since the swap.
                    for (_, create) in &record.views {
                        sql.extend(create.iter().cloned());
                    }
                    for v in views.iter().filter(|v| !record.views.iter().any(|(n, _)| *n == v.name)) {
                        sql.extend(v.create.iter().cloned());
                    }
                    for s in &sql {
                        Spi::run(s).expect("swap back statement");
                    }
                    locked_at.elapsed().as_secs_f64() * 1000.0
                },
            )
        })
    })?;
    Ok(json!({"attempts": report.attempts, "lock_held_ms": (held_ms * 10.0).round() / 10.0}))
}

/// Complete after the swap, before the plan's own complete steps: the foreign
/// keys of other tables are validated on the new table (no exclusive lock),
/// then the old ones dropped and the new ones renamed (short, locked).
pub fn complete_foreign_keys(m: &MigrationRow, policy: &RetryPolicy) -> ZdmResult<Vec<Step>> {
    let record: SwapRecord = serde_json::from_value(store::shadow_state(&m.name)?["swap"].clone()).unwrap_or_default();
    for f in record.foreign_keys.iter().filter(|f| f.validated) {
        run_steps(
            &[Step::locked(
                format!("validate foreign key {} of {} on the new table", f.temporary, f.table),
                format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", f.table, f.temporary),
                &f.table,
                LockMode::ShareUpdateExclusive,
            )
            .with_caller_rights()],
            policy,
        )?;
    }
    let mut steps = Vec::new();
    for f in &record.foreign_keys {
        steps.push(
            Step::locked(
                format!(
                    "drop foreign key {} of {} (it references the old table)",
                    f.name, f.table
                ),
                format!("ALTER TABLE {} DROP CONSTRAINT {}", f.table, f.name),
                &f.table,
                LockMode::AccessExclusive,
            )
            .with_caller_rights(),
        );
        steps.push(
            Step::locked(
                format!("give foreign key {} its name {}", f.temporary, f.name),
                format!(
                    "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                    f.table, f.temporary, f.name
                ),
                &f.table,
                LockMode::AccessExclusive,
            )
            .with_caller_rights(),
        );
    }
    Ok(steps)
}
