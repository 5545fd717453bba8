//! The swap's statements: what runs before the renames (on the old table
//! under its name), the renames, and what runs after (on the new table,
//! which then has the name): every dependent re-pointed, and what the swap
//! back will need recorded.

use super::back::setval_from;
use super::catalog::{acl_statements, rows, text, unquoted, views_on, ViewDef};
use super::record::{IncomingForeignKey, SwapRecord};
use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::Ident;
use crate::migrations::store::MigrationRow;
use crate::plan::ShadowPlan;
use crate::shadow::sync::create_trigger;
use crate::shadow::truncate::create_truncate_trigger;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

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
        self.policies()?;
        self.comment_and_replica_identity(comment, &replident, replident_index)
    }

    /// Row security policies, created again on the new table.
    fn policies(&mut self) -> ZdmResult<()> {
        let t = self.t;
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
        Ok(())
    }

    /// The table's comment, and its replica identity (an index: the shadow's copy of it).
    fn comment_and_replica_identity(
        &mut self,
        comment: Option<String>,
        replident: &str,
        replident_index: Option<String>,
    ) -> ZdmResult<()> {
        let t = self.t;
        if let Some(c) = comment {
            self.post.push(format!("COMMENT ON TABLE {t} IS {c}"));
        }
        match (replident, replident_index) {
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
pub(super) fn forward_statements(
    m: &MigrationRow,
    sp: &ShadowPlan,
) -> ZdmResult<(Vec<String>, SwapRecord, Vec<String>)> {
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
    // The same trigger text as the forward one's (ENABLE ALWAYS included).
    script
        .post
        .push(create_trigger(&sp.reverse_trigger, &sp.table, &sp.reverse_function));
    if let Some(tt) = &sp.truncate_triggers {
        script
            .post
            .push(create_truncate_trigger(&tt.reverse, &sp.table, &tt.reverse_function));
    }
    Ok(script.finish())
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
