//! The text → statements, by PostgreSQL's own raw parser (`raw_parser`), which
//! splits it exactly as the server would (dollar quotes, comments, `BEGIN`).
//! The node trees are walked here, and only here, into the plain data of
//! `model.rs`; nothing is executed. Type names and default expressions are
//! resolved by the server on the way (`resolve.rs`), with the caller's
//! search_path. A syntax error is 42601 naming the line.

use super::model::*;
use super::resolve;
use super::span;
use crate::error::{ZdmError, ZdmResult};
use crate::session::{caught_message, caught_sqlstate, in_subtransaction};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::{self, AlterTableType as At, ConstrType as Ct, NodeTag, ObjectType as Ot};
use std::cell::Cell;
use std::ffi::{CStr, CString};

thread_local! {
    /// Cursor position of the last error raised while parsing (1-based chars).
    static ERROR_POSITION: Cell<i32> = const { Cell::new(0) };
}

/// Every statement of `text`, in order.
pub fn parse(text: &str) -> ZdmResult<Vec<Statement>> {
    if text.contains('\0') {
        return Err(ZdmError::invalid_parameter("the migration text contains a NUL byte"));
    }
    let c = CString::new(text).unwrap();
    ERROR_POSITION.with(|p| p.set(0));
    let context_stack = unsafe { pg_sys::error_context_stack };
    let parsed = in_subtransaction(|| unsafe { parse_here(text, &c) });
    // Our callback lived on parse_here's stack: never leave it linked.
    unsafe { pg_sys::error_context_stack = context_stack };
    parsed.map_err(|e| {
        let pos = ERROR_POSITION.with(|p| p.get());
        let line = if pos > 0 {
            let byte = text.char_indices().nth(pos as usize - 1).map_or(text.len(), |(b, _)| b);
            format!("line {}", span::line_of(text, byte))
        } else {
            "the text".to_string()
        };
        ZdmError::new(
            caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            format!("cannot lint {line}: {}", caught_message(&e)),
        )
        .hint("zdm.lint reads the text with PostgreSQL's parser: fix the statement so that psql would accept it.")
    })
}

/// Remembers where the parser failed (errposition) as the error is raised.
unsafe extern "C-unwind" fn note_position(_arg: *mut std::ffi::c_void) {
    let pos = pg_sys::geterrposition();
    if pos > 0 {
        ERROR_POSITION.with(|p| p.set(pos));
    }
}

unsafe fn parse_here(text: &str, c: &CString) -> Vec<Statement> {
    let mut callback = pg_sys::ErrorContextCallback {
        previous: pg_sys::error_context_stack,
        callback: Some(note_position),
        arg: std::ptr::null_mut(),
    };
    pg_sys::error_context_stack = &mut callback;
    let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
    pg_sys::error_context_stack = callback.previous;
    let mut out = Vec::new();
    for (i, node) in cells(list).into_iter().enumerate() {
        let raw = node as *mut pg_sys::RawStmt;
        let start = (*raw).stmt_location.max(0) as usize;
        let end = if (*raw).stmt_len > 0 {
            start + (*raw).stmt_len as usize
        } else {
            text.len()
        };
        let begin = span::skip_trivia(text, start).min(end);
        let ctx = Ctx { text, end };
        out.push(Statement {
            number: i as i32 + 1,
            line: span::line_of(text, begin),
            text: text[begin..end].trim().to_string(),
            kind: kind_of(&ctx, (*raw).stmt),
        });
    }
    out
}

/// The whole text and where the current statement ends in it.
struct Ctx<'a> {
    text: &'a str,
    end: usize,
}

unsafe fn cells(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    if list.is_null() {
        return vec![];
    }
    (0..(*list).length as usize)
        .map(|i| (*(*list).elements.add(i)).ptr_value as *mut pg_sys::Node)
        .collect()
}

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

unsafe fn is(node: *mut pg_sys::Node, tag: NodeTag) -> bool {
    !node.is_null() && (*node).type_ == tag
}

/// A list of String nodes.
unsafe fn names(list: *mut pg_sys::List) -> Vec<String> {
    cells(list)
        .into_iter()
        .filter(|n| is(*n, NodeTag::T_String))
        .map(|n| cstr((*(n as *mut pg_sys::String)).sval))
        .collect()
}

fn rel_from_names(mut n: Vec<String>) -> RelName {
    let name = n.pop().unwrap_or_default();
    RelName { schema: n.pop(), name }
}

unsafe fn rel(rv: *mut pg_sys::RangeVar) -> RelName {
    if rv.is_null() {
        return RelName {
            schema: None,
            name: String::new(),
        };
    }
    let schema = (*rv).schemaname;
    RelName {
        schema: (!schema.is_null()).then(|| cstr(schema)),
        name: cstr((*rv).relname),
    }
}

unsafe fn kind_of(ctx: &Ctx, node: *mut pg_sys::Node) -> Kind {
    match (*node).type_ {
        NodeTag::T_AlterTableStmt => alter_table(ctx, node as *mut pg_sys::AlterTableStmt),
        NodeTag::T_IndexStmt => {
            let s = &*(node as *mut pg_sys::IndexStmt);
            let loc = (*s.relation).location.max(0) as usize;
            let after = span::skip_name(ctx.text, loc).min(ctx.end);
            Kind::CreateIndex {
                table: rel(s.relation),
                index: (!s.idxname.is_null()).then(|| cstr(s.idxname)),
                concurrent: s.concurrent,
                unique: s.unique,
                if_not_exists: s.if_not_exists,
                definition: Some(ctx.text[after..ctx.end].trim().trim_end_matches(';').trim().to_string()),
            }
        }
        NodeTag::T_DropStmt => drop(node as *mut pg_sys::DropStmt),
        NodeTag::T_DropdbStmt => Kind::DropDatabase {
            name: cstr((*(node as *mut pg_sys::DropdbStmt)).dbname),
        },
        NodeTag::T_TruncateStmt => {
            let s = &*(node as *mut pg_sys::TruncateStmt);
            Kind::Truncate {
                tables: cells(s.relations)
                    .into_iter()
                    .map(|r| rel(r as *mut pg_sys::RangeVar))
                    .collect(),
                cascade: s.behavior == pg_sys::DropBehavior::DROP_CASCADE,
            }
        }
        NodeTag::T_RenameStmt => rename(node as *mut pg_sys::RenameStmt).unwrap_or_else(|| other(node)),
        NodeTag::T_AlterEnumStmt if !(*(node as *mut pg_sys::AlterEnumStmt)).oldVal.is_null() => {
            Kind::RenameEnumValue {
                type_name: names((*(node as *mut pg_sys::AlterEnumStmt)).typeName).join("."),
            }
        }
        NodeTag::T_CreateStmt => create_table(ctx, node as *mut pg_sys::CreateStmt),
        NodeTag::T_CreateDomainStmt => {
            let s = &*(node as *mut pg_sys::CreateDomainStmt);
            Kind::CreateDomain {
                name: names(s.domainname).join("."),
                has_constraint: !cells(s.constraints).is_empty(),
            }
        }
        NodeTag::T_AlterDomainStmt if (*(node as *mut pg_sys::AlterDomainStmt)).subtype == b'C' as std::ffi::c_char => {
            let s = &*(node as *mut pg_sys::AlterDomainStmt);
            let not_valid = is(s.def, NodeTag::T_Constraint) && (*(s.def as *mut pg_sys::Constraint)).skip_validation;
            Kind::AlterDomainAddConstraint {
                name: names(s.typeName).join("."),
                not_valid,
            }
        }
        NodeTag::T_ReindexStmt => {
            let s = &*(node as *mut pg_sys::ReindexStmt);
            let concurrent = cells(s.params)
                .into_iter()
                .any(|d| is(d, NodeTag::T_DefElem) && cstr((*(d as *mut pg_sys::DefElem)).defname) == "concurrently");
            Kind::Reindex {
                concurrent,
                target: (!s.relation.is_null()).then(|| rel(s.relation)),
            }
        }
        NodeTag::T_TransactionStmt => {
            use pg_sys::TransactionStmtKind as T;
            Kind::Transaction(match (*(node as *mut pg_sys::TransactionStmt)).kind {
                T::TRANS_STMT_BEGIN | T::TRANS_STMT_START => TxKind::Begin,
                T::TRANS_STMT_COMMIT => TxKind::Commit,
                T::TRANS_STMT_ROLLBACK => TxKind::Rollback,
                T::TRANS_STMT_SAVEPOINT | T::TRANS_STMT_RELEASE | T::TRANS_STMT_ROLLBACK_TO => TxKind::Savepoint,
                _ => TxKind::Other,
            })
        }
        NodeTag::T_VariableSetStmt => set(node as *mut pg_sys::VariableSetStmt),
        NodeTag::T_UpdateStmt => {
            let s = &*(node as *mut pg_sys::UpdateStmt);
            Kind::DataChange {
                table: rel(s.relation),
                verb: "UPDATE",
                has_where: !s.whereClause.is_null(),
            }
        }
        NodeTag::T_DeleteStmt => {
            let s = &*(node as *mut pg_sys::DeleteStmt);
            Kind::DataChange {
                table: rel(s.relation),
                verb: "DELETE",
                has_where: !s.whereClause.is_null(),
            }
        }
        _ => other(node),
    }
}

unsafe fn other(node: *mut pg_sys::Node) -> Kind {
    Kind::Other {
        tag: cstr(pg_sys::CreateCommandName(node)),
    }
}

unsafe fn set(s: *mut pg_sys::VariableSetStmt) -> Kind {
    let s = &*s;
    if cstr(s.name) != "lock_timeout" {
        return Kind::SetOther;
    }
    let value = cells(s.args).first().and_then(|a| {
        if !is(*a, NodeTag::T_A_Const) {
            return None;
        }
        let c = &*(*a as *mut pg_sys::A_Const);
        match c.val.node.type_ {
            NodeTag::T_Integer => Some(c.val.ival.ival.to_string()),
            NodeTag::T_String => Some(cstr(c.val.sval.sval)),
            _ => None,
        }
    });
    Kind::SetLockTimeout {
        value: if s.kind == pg_sys::VariableSetKind::VAR_SET_VALUE {
            value
        } else {
            None
        },
    }
}

unsafe fn drop(s: *mut pg_sys::DropStmt) -> Kind {
    let s = &*s;
    let objects: Vec<RelName> = cells(s.objects)
        .into_iter()
        .map(|o| rel_from_names(names(o as *mut pg_sys::List)))
        .collect();
    let cascade = s.behavior == pg_sys::DropBehavior::DROP_CASCADE;
    match s.removeType {
        Ot::OBJECT_INDEX => Kind::DropIndex {
            indexes: objects,
            concurrent: s.concurrent,
            if_exists: s.missing_ok,
        },
        Ot::OBJECT_TABLE => Kind::DropTable {
            tables: objects,
            cascade,
        },
        _ => Kind::Other {
            tag: "DROP".to_string(),
        },
    }
}

unsafe fn rename(s: *mut pg_sys::RenameStmt) -> Option<Kind> {
    let s = &*s;
    match (s.renameType, s.relationType) {
        (Ot::OBJECT_COLUMN, Ot::OBJECT_TABLE) => Some(Kind::RenameColumn {
            table: rel(s.relation),
            column: cstr(s.subname),
            new_name: cstr(s.newname),
        }),
        (Ot::OBJECT_TABLE, _) => Some(Kind::RenameTable {
            table: rel(s.relation),
            new_name: cstr(s.newname),
        }),
        (Ot::OBJECT_SCHEMA, _) => Some(Kind::RenameSchema {
            schema: cstr(s.subname),
        }),
        _ => None,
    }
}

unsafe fn create_table(ctx: &Ctx, s: *mut pg_sys::CreateStmt) -> Kind {
    let s = &*s;
    let mut columns = Vec::new();
    let mut constraints = Vec::new();
    for e in cells(s.tableElts) {
        if is(e, NodeTag::T_ColumnDef) {
            columns.push(column(ctx, e as *mut pg_sys::ColumnDef));
        } else if is(e, NodeTag::T_Constraint) {
            constraints.push(constraint(ctx, e as *mut pg_sys::Constraint));
        }
    }
    Kind::CreateTable {
        table: rel(s.relation),
        columns,
        constraints,
    }
}

unsafe fn alter_table(ctx: &Ctx, s: *mut pg_sys::AlterTableStmt) -> Kind {
    let st = &*s;
    if st.objtype != Ot::OBJECT_TABLE {
        return Kind::Other {
            tag: "ALTER".to_string(),
        };
    }
    let lock = lock_level(pg_sys::AlterTableGetLockLevel(st.cmds));
    let cmds = cells(st.cmds)
        .into_iter()
        .map(|c| alter_cmd(ctx, &*(c as *mut pg_sys::AlterTableCmd)))
        .collect();
    Kind::AlterTable {
        table: rel(st.relation),
        cmds,
        lock,
    }
}

fn lock_level(mode: i32) -> LockMode {
    use LockMode::*;
    // lockdefs.h numbers them from 1 (0 is NoLock, which ALTER TABLE never takes).
    [
        AccessShare,
        RowShare,
        RowExclusive,
        ShareUpdateExclusive,
        Share,
        ShareRowExclusive,
        Exclusive,
        AccessExclusive,
    ]
    .get((mode as usize).wrapping_sub(1))
    .copied()
    .unwrap_or(AccessExclusive)
}

unsafe fn alter_cmd(ctx: &Ctx, c: &pg_sys::AlterTableCmd) -> AlterCmd {
    let name = cstr(c.name);
    match c.subtype {
        At::AT_AddColumn => AlterCmd::AddColumn(column(ctx, c.def as *mut pg_sys::ColumnDef)),
        At::AT_DropColumn => AlterCmd::DropColumn { column: name },
        At::AT_AlterColumnType => {
            let def = &*(c.def as *mut pg_sys::ColumnDef);
            let using = (!def.raw_default.is_null())
                .then(|| using_text(ctx, def.location))
                .flatten();
            AlterCmd::AlterType {
                column: name,
                new_type: type_ref(def.typeName),
                using,
            }
        }
        At::AT_SetNotNull => AlterCmd::SetNotNull { column: name },
        At::AT_DropNotNull => AlterCmd::DropNotNull { column: name },
        At::AT_ColumnDefault => AlterCmd::SetDefault { column: name },
        At::AT_AddConstraint => AlterCmd::AddConstraint(constraint(ctx, c.def as *mut pg_sys::Constraint)),
        At::AT_ValidateConstraint => AlterCmd::ValidateConstraint { name },
        At::AT_DropConstraint => AlterCmd::DropConstraint { name },
        At::AT_AddIdentity => AlterCmd::AddIdentity { column: name },
        other => AlterCmd::Other {
            what: format!("subcommand {other}"),
        },
    }
}

/// The text of `USING expr` of an ALTER COLUMN ... TYPE starting at `from`.
fn using_text(ctx: &Ctx, from: i32) -> Option<String> {
    let from = from.max(0) as usize;
    let clause_end = span::clause_end(ctx.text, from, ctx.end);
    let (_, kw_end) = span::find_keyword(ctx.text, from, clause_end, "using")?;
    Some(ctx.text[kw_end..clause_end].trim().to_string())
}

unsafe fn type_ref(tn: *mut pg_sys::TypeName) -> TypeRef {
    if tn.is_null() {
        return TypeRef::default();
    }
    let t = &*tn;
    let written = names(t.names).pop().unwrap_or_default().to_lowercase();
    let is_serial = matches!(
        written.as_str(),
        "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
    );
    TypeRef {
        has_typmod: !t.typmods.is_null(),
        is_array: !t.arrayBounds.is_null(),
        resolved: if is_serial { None } else { resolve::resolve_type(tn) },
        written,
    }
}

unsafe fn column(ctx: &Ctx, def: *mut pg_sys::ColumnDef) -> ColumnSpec {
    let d = &*def;
    let mut col = ColumnSpec {
        name: cstr(d.colname),
        type_ref: type_ref(d.typeName),
        not_null: d.is_not_null,
        ..Default::default()
    };
    for c in cells(d.constraints) {
        if !is(c, NodeTag::T_Constraint) {
            continue;
        }
        let con = &*(c as *mut pg_sys::Constraint);
        match con.contype {
            Ct::CONSTR_NOTNULL => col.not_null = true,
            Ct::CONSTR_DEFAULT => {
                col.default = Some(resolve::resolve_default(con.raw_expr, col.type_ref.resolved.as_ref()))
            }
            Ct::CONSTR_IDENTITY => col.identity = true,
            Ct::CONSTR_GENERATED => col.generated_stored = true,
            Ct::CONSTR_NULL
            | Ct::CONSTR_ATTR_DEFERRABLE
            | Ct::CONSTR_ATTR_NOT_DEFERRABLE
            | Ct::CONSTR_ATTR_DEFERRED
            | Ct::CONSTR_ATTR_IMMEDIATE => {}
            _ => {
                let mut spec = constraint(ctx, c as *mut pg_sys::Constraint);
                // A column constraint's columns are the column itself.
                match &mut spec.kind {
                    ConstraintKind::ForeignKey { columns, .. }
                    | ConstraintKind::Unique { columns, .. }
                    | ConstraintKind::PrimaryKey { columns, .. }
                        if columns.is_empty() =>
                    {
                        columns.push(col.name.clone())
                    }
                    _ => {}
                }
                if matches!(spec.kind, ConstraintKind::PrimaryKey { .. }) {
                    col.not_null = true;
                }
                col.constraints.push(spec);
            }
        }
    }
    col
}

unsafe fn constraint(ctx: &Ctx, c: *mut pg_sys::Constraint) -> ConstraintSpec {
    let c = &*c;
    let index = (!c.indexname.is_null()).then(|| cstr(c.indexname));
    let kind = match c.contype {
        Ct::CONSTR_CHECK => {
            let loc = c.location.max(0) as usize;
            let expr = span::find_keyword(ctx.text, loc, ctx.end, "check")
                .and_then(|(_, e)| span::parenthesised(ctx.text, e, ctx.end))
                .map(|(s, e)| ctx.text[s..e].trim().to_string());
            ConstraintKind::Check { expr }
        }
        Ct::CONSTR_FOREIGN => ConstraintKind::ForeignKey {
            columns: names(c.fk_attrs),
            references: rel(c.pktable),
            referenced_columns: names(c.pk_attrs),
            on_delete: match c.fk_del_action as u8 {
                b'r' => "RESTRICT",
                b'c' => "CASCADE",
                b'n' => "SET NULL",
                b'd' => "SET DEFAULT",
                _ => "NO ACTION",
            }
            .to_string(),
        },
        Ct::CONSTR_UNIQUE => ConstraintKind::Unique {
            columns: names(c.keys),
            using_index: index,
        },
        Ct::CONSTR_PRIMARY => ConstraintKind::PrimaryKey {
            columns: names(c.keys),
            using_index: index,
        },
        Ct::CONSTR_EXCLUSION => ConstraintKind::Exclusion,
        Ct::CONSTR_NOTNULL => ConstraintKind::NotNull,
        _ => ConstraintKind::Other,
    };
    ConstraintSpec {
        name: (!c.conname.is_null()).then(|| cstr(c.conname)),
        kind,
        not_valid: c.skip_validation,
    }
}
