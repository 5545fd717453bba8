//! Partitioned tables: what PostgreSQL 15 cannot do to one without a long
//! lock (refused here, before anything is created, with the way out); the
//! steps of an index and of a UNIQUE constraint built partition by
//! partition; checks validated partition by partition.
//!
//! Everything else works as on a plain table because PostgreSQL recurses:
//! ADD/DROP COLUMN, SET NOT NULL, ADD CHECK … NOT VALID and VALIDATE on the
//! parent reach every partition; row triggers created on the parent (and
//! their ENABLE ALWAYS) are cloned to every partition, present and future;
//! the backfill walks the leaves one by one (`KeyInfo::partitions`,
//! `partition_backfill`).

use super::PlanContext;
use crate::catalog::{PartitionTree, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::OperationSpec;

/// Refuse what a partitioned table cannot go through without a long lock.
pub fn refuse(spec: &OperationSpec, table: &TableInfo) -> ZdmResult<()> {
    let Some(tree) = &table.partitions else { return Ok(()) };
    let tname = table.name.display_raw();
    let key_column = |column: &str, change: &str, way_out: String| -> ZdmResult<()> {
        if !tree.key_columns.iter().any(|c| c == column) {
            return Ok(());
        }
        Err(ZdmError::not_supported(format!(
            "column \"{column}\" is in the partition key of relation \"{tname}\"; PostgreSQL cannot {change} it while the table is partitioned by it"
        ))
        .hint(way_out))
    };
    match spec {
        OperationSpec::CreateShadowTable(_) => Err(ZdmError::not_supported(format!(
            "\"{tname}\" is a partitioned table; pg_zdm does not restructure partitioned tables through a shadow table yet"
        ))
        .hint(
            "Column operations work on partitioned tables: zdm.add_column, zdm.rename_column, zdm.alter_column_type \
             (of a column outside the key and the partition key), zdm.set_not_null, zdm.drop_column, zdm.add_check, \
             zdm.add_unique, zdm.create_index.",
        )),
        OperationSpec::AlterColumnType(a) => {
            key_column(&a.column, "change the type of", rebuild_hint())?;
            if table.is_key_column(&a.column) {
                return Err(ZdmError::not_supported(format!(
                    "column \"{}\" is part of the key of partitioned relation \"{tname}\"; its type changes only through a shadow table, which pg_zdm does not build for partitioned tables yet",
                    a.column
                ))
                .hint(rebuild_hint()));
            }
            Ok(())
        }
        OperationSpec::DropColumn(a) => key_column(&a.column, "drop", rebuild_hint()),
        OperationSpec::RenameColumn(a) => key_column(
            &a.column,
            "make a second column of",
            format!(
                "rename_column keeps both names working through a second column, which cannot join the partition key. \
                 PostgreSQL renames it in the catalog only (a short ACCESS EXCLUSIVE lock; every client switches names at once): \
                 ALTER TABLE {} RENAME COLUMN {} TO {};",
                table.name,
                Ident::new(a.column.clone()),
                Ident::new(a.new_name.clone())
            ),
        ),
        OperationSpec::AddForeignKey(_) => Err(ZdmError::not_supported(format!(
            "PostgreSQL 15 cannot add a NOT VALID foreign key to partitioned table \"{tname}\"; a valid one scans every partition under SHARE ROW EXCLUSIVE"
        ))
        .hint(
            "On each leaf partition: ALTER TABLE <partition> ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID; then \
             ALTER TABLE <partition> VALIDATE CONSTRAINT ... (no write lock). Then the same ADD CONSTRAINT on the \
             partitioned table only attaches the partitions' foreign keys (catalog only).",
        )),
        OperationSpec::AddUnique(a) => {
            let missing: Vec<&str> = tree
                .key_columns
                .iter()
                .filter(|k| !a.columns.contains(k))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            Err(ZdmError::not_supported(format!(
                "a UNIQUE constraint of partitioned table \"{tname}\" must include its partition key: {} missing",
                missing.join(", ")
            ))
            .hint("PostgreSQL checks uniqueness partition by partition; add the partition key columns to the constraint's columns."))
        }
        _ => Ok(()),
    }
}

fn rebuild_hint() -> String {
    "Build a new partitioned table with the new structure and move the rows to it (pg_zdm's shadow restructure \
     does not cover partitioned tables yet); other columns change online with zdm.alter_column_type, zdm.drop_column."
        .to_string()
}

/// A partitioned table's constraints validated partition by partition: each
/// leaf's `VALIDATE CONSTRAINT` runs as soon as the backfill is done with it,
/// in that batch's transaction (SHARE UPDATE EXCLUSIVE on that partition
/// only, for its scan; a failure names it and keeps the others validated).
/// The parent's `VALIDATE` at the end then finds them validated (PostgreSQL
/// skips validated partitions) and scans only partitions created since.
/// The constraints are those the plan validates on the table (the validate
/// steps are `ALTER TABLE <table> VALIDATE CONSTRAINT <name>`, as `ops` write
/// them); foreign keys never get here (refused on partitioned tables).
pub fn validate_per_partition(plan: &mut Plan) {
    let Some(backfill) = plan.backfill.as_mut() else { return };
    let prefix = format!("ALTER TABLE {} VALIDATE CONSTRAINT ", backfill.table);
    let constraints: Vec<&str> = plan
        .validate
        .iter()
        .filter_map(|s| s.sql.strip_prefix(&prefix))
        .collect();
    for leaf in &mut backfill.partitions {
        leaf.validate = constraints
            .iter()
            .map(|c| {
                Step::locked(
                    format!("validate {c} on partition {} (reads and writes go on)", leaf.table),
                    format!("ALTER TABLE {} VALIDATE CONSTRAINT {c}", leaf.table),
                    &leaf.table,
                    LockMode::ShareUpdateExclusive,
                )
            })
            .collect();
    }
}

/// `add_unique` on a partitioned table (PostgreSQL 15 has no ADD CONSTRAINT
/// … USING INDEX for one): per leaf partition a top-level `CREATE UNIQUE
/// INDEX CONCURRENTLY`; complete makes each the partition's constraint
/// (`… UNIQUE USING INDEX`, catalog only), then adds the table's (`ADD
/// CONSTRAINT … UNIQUE (…)`), which attaches the partitions' constraints and
/// builds one only for a partition created since (under the lock: it is as
/// large as what was written into it meanwhile).
pub fn unique_constraint_plan(
    ctx: &PlanContext,
    table: &QualifiedName,
    tree: &PartitionTree,
    constraint: &Ident,
    columns: &str,
) -> Plan {
    let t = table.to_string();
    let aex = LockMode::AccessExclusive;
    let mut plan = Plan::default();
    for (i, leaf) in tree.leaves().enumerate() {
        let name = ctx.object_name(&format!("uq{i}"));
        let (lt, index) = (leaf.name.to_string(), format!("{}.{name}", leaf.name.schema));
        let raw = leaf.name.display_raw();
        plan.start.push(
            Step::top_level_index(
                format!("unique index on partition {raw} CONCURRENTLY (top level: zdm.pending_statements)"),
                format!("CREATE UNIQUE INDEX CONCURRENTLY {name} ON {lt} {columns}"),
                &lt,
                &index,
            )
            .on_partition_of(&t),
        );
        plan.complete.push(Step::unlocked(
            format!("constraint of partition {raw} from its unique index (catalog only)"),
            partition_constraint(&t, &lt, &name),
        ));
        plan.rollback.push(Step::unlocked(
            format!("drop the unique index of partition {raw}"),
            super::indexes::drop_index_of_partition(&index, &lt),
        ));
    }
    plan.complete.push(Step::locked(
        format!(
            "constraint {} of the table: attaches the partitions' (catalog only)",
            constraint.raw()
        ),
        format!("ALTER TABLE {t} ADD CONSTRAINT {constraint} UNIQUE {columns}"),
        &t,
        aex,
    ));
    plan
}

/// `ADD CONSTRAINT name UNIQUE USING INDEX name` on a partition still in the
/// table's tree (one detached or dropped meanwhile is left alone).
fn partition_constraint(table: &str, partition: &str, name: &Ident) -> String {
    let (table_lit, partition_lit) = (
        crate::ident::Literal::pure(table),
        crate::ident::Literal::pure(partition),
    );
    let body = format!(
        "BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_partition_tree({table_lit}::pg_catalog.regclass) t
                WHERE t.relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({partition_lit})) THEN
        ALTER TABLE {partition} ADD CONSTRAINT {name} UNIQUE USING INDEX {name};
    END IF;
END;
"
    );
    format!("DO {}", crate::sqlgen::dollar_quote(&body))
}

/// An index of a partitioned table built without blocking writes:
/// `CREATE INDEX … ON ONLY` the table and each partitioned partition (catalog
/// only, the parent's left invalid), then for each leaf a top-level `CREATE
/// INDEX CONCURRENTLY` and `ALTER INDEX … ATTACH PARTITION`. The parent index
/// turns valid with the last attach. A partition created meanwhile gets its
/// copy of the index from PostgreSQL (it is empty); a leaf detached or
/// dropped meanwhile is skipped.
pub struct PartitionedIndex<'a> {
    pub table: &'a QualifiedName,
    pub tree: &'a PartitionTree,
    /// The index on the table itself (schema-qualified).
    pub index: &'a QualifiedName,
    pub unique: bool,
    /// What follows `ON table`: `USING btree (a, b) WHERE ...`.
    pub definition: &'a str,
    /// Distinguishes the names of the partitions' indexes of one migration.
    pub tag: &'a str,
}

/// Steps of a partitioned index: start (in plan order, some top level) and rollback.
pub struct IndexSteps {
    pub start: Vec<Step>,
    pub rollback: Vec<Step>,
}

impl PartitionedIndex<'_> {
    pub fn steps(&self, ctx: &PlanContext) -> IndexSteps {
        let t = self.table.to_string();
        let unique = if self.unique { "UNIQUE " } else { "" };
        let (def, raw) = (self.definition, self.index.name.raw());
        let mut names = vec![(self.table.clone(), self.index.clone())];
        let index_of = |names: &[(QualifiedName, QualifiedName)], table: &QualifiedName| {
            names
                .iter()
                .find(|(t, _)| t == table)
                .map(|(_, i)| i.to_string())
                .unwrap_or_default()
        };
        let mut start = vec![Step::locked(
            format!(
                "index {raw} on {} only, not valid until every partition has its own",
                self.table.display_raw()
            ),
            format!("CREATE {unique}INDEX {} ON ONLY {t} {def}", self.index.name),
            &t,
            LockMode::Share,
        )];
        start[0].builds_index = Some(self.index.to_string());
        let mut rollback = vec![Step::locked(
            format!("drop index {raw} with the partitions' indexes attached to it"),
            format!("DROP INDEX IF EXISTS {}", self.index),
            &t,
            LockMode::AccessExclusive,
        )];
        for (i, p) in self.tree.members.iter().enumerate() {
            let name = QualifiedName::new(p.name.schema.clone(), ctx.object_name(&format!("{}p{i}", self.tag)));
            let (pt, parent_index) = (p.name.to_string(), index_of(&names, &p.parent));
            let attach_sql = format!("ALTER INDEX {parent_index} ATTACH PARTITION {name}");
            let attach = Step::unlocked(
                format!("attach the index of {} to {parent_index}", p.name.display_raw()),
                attach_sql.clone(),
            );
            if p.leaf {
                start.push(
                    Step::top_level_index(
                        format!(
                            "index {raw} on partition {} CONCURRENTLY (top level: zdm.pending_statements)",
                            p.name.display_raw()
                        ),
                        format!("CREATE {unique}INDEX CONCURRENTLY {} ON {pt} {def}", name.name),
                        &pt,
                        &name.to_string(),
                    )
                    .on_partition_of(&t),
                );
                let mut attach = attach.on_partition_of(&t);
                attach.sql = attach_with_timeout(&attach_sql);
                attach.top_level = true;
                attach.lock = Some(crate::plan::LockTarget {
                    relation: pt.clone(),
                    mode: LockMode::ShareUpdateExclusive,
                });
                attach.attaches_index = Some((parent_index, name.to_string()));
                start.push(attach);
                rollback.push(Step::unlocked(
                    format!(
                        "drop the index of partition {} if it was not attached",
                        p.name.display_raw()
                    ),
                    super::indexes::drop_index_of_partition(&name.to_string(), &pt),
                ));
            } else {
                start.push(Step::locked(
                    format!("index {raw} on partition {} only", p.name.display_raw()),
                    format!("CREATE {unique}INDEX {} ON ONLY {pt} {def}", name.name),
                    &pt,
                    LockMode::Share,
                ));
                start.push(attach);
            }
            names.push((p.name.clone(), name));
        }
        IndexSteps { start, rollback }
    }
}

/// The attach takes ACCESS EXCLUSIVE on the partition's new index for a
/// moment, which queries planning on the partition wait for: it gives up
/// after `zdm.lock_timeout` rather than queue behind a long transaction
/// (run the pending statements again).
fn attach_with_timeout(attach: &str) -> String {
    let body = format!(
        "BEGIN
    PERFORM pg_catalog.set_config('lock_timeout', pg_catalog.current_setting('zdm.lock_timeout'), true);
    {attach};
END;
"
    );
    format!("DO {}", crate::sqlgen::dollar_quote(&body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Partition;

    fn name(s: &str, t: &str) -> QualifiedName {
        QualifiedName::new(Ident::test(s), Ident::test(t))
    }

    #[test]
    fn an_index_is_built_partition_by_partition() {
        let table = name("public", "ev");
        let tree = PartitionTree {
            members: vec![
                Partition {
                    oid: 1,
                    name: name("public", "ev_2024"),
                    parent: table.clone(),
                    leaf: false,
                },
                Partition {
                    oid: 2,
                    name: name("public", "ev_def"),
                    parent: table.clone(),
                    leaf: true,
                },
                Partition {
                    oid: 3,
                    name: name("public", "ev_2024_h0"),
                    parent: name("public", "ev_2024"),
                    leaf: true,
                },
            ],
            key_columns: vec!["day".into(), "id".into()],
        };
        let ctx = PlanContext {
            migration: "m".into(),
            quote: Ident::test,
        };
        let index = name("public", "ev_w");
        let steps = PartitionedIndex {
            table: &table,
            tree: &tree,
            index: &index,
            unique: false,
            definition: "USING btree (w)",
            tag: "ix",
        }
        .steps(&ctx);
        let sql: Vec<(&str, bool)> = steps.start.iter().map(|s| (s.sql.as_str(), s.top_level)).collect();
        let attach = |parent: &str, index: &str| {
            format!(
                "DO $zdm$\nBEGIN\n    PERFORM pg_catalog.set_config('lock_timeout', pg_catalog.current_setting('zdm.lock_timeout'), true);\n    \
                 ALTER INDEX {parent} ATTACH PARTITION {index};\nEND;\n$zdm$"
            )
        };
        let (a1, a2) = (
            attach("public.ev_w", "public.zdm_ixp1_m"),
            attach("public.zdm_ixp0_m", "public.zdm_ixp2_m"),
        );
        assert_eq!(
            sql,
            [
                ("CREATE INDEX ev_w ON ONLY public.ev USING btree (w)", false),
                ("CREATE INDEX zdm_ixp0_m ON ONLY public.ev_2024 USING btree (w)", false),
                ("ALTER INDEX public.ev_w ATTACH PARTITION public.zdm_ixp0_m", false),
                (
                    "CREATE INDEX CONCURRENTLY zdm_ixp1_m ON public.ev_def USING btree (w)",
                    true
                ),
                (a1.as_str(), true),
                (
                    "CREATE INDEX CONCURRENTLY zdm_ixp2_m ON public.ev_2024_h0 USING btree (w)",
                    true
                ),
                (a2.as_str(), true),
            ]
        );
        assert_eq!(steps.start[0].builds_index.as_deref(), Some("public.ev_w"));
        assert_eq!(
            steps.start[4].attaches_index,
            Some(("public.ev_w".into(), "public.zdm_ixp1_m".into()))
        );
        assert_eq!(steps.start[3].partition_of.as_deref(), Some("public.ev"));
        assert_eq!(steps.rollback[0].sql, "DROP INDEX IF EXISTS public.ev_w");
        assert!(
            steps.rollback[1]
                .sql
                .contains("pg_catalog.to_regclass('public.ev_def')"),
            "{}",
            steps.rollback[1].sql
        );
        assert_eq!(steps.rollback.len(), 3, "the parent's, and each leaf's if not attached");
    }
}
