//! set_comment: a table's or a column's comment, at complete (it documents
//! the schema the new application sees from then on). `COMMENT ON` takes
//! SHARE UPDATE EXCLUSIVE (reads and writes go on) and changes the catalog
//! only; start changes nothing, so a rollback has nothing to undo.

use super::{fit_name, require_column, Operation, PlanContext};
use crate::catalog::TableInfo;
use crate::error::ZdmResult;
use crate::ident::{Ident, Literal, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::SetCommentSpec;

pub struct SetComment {
    table: QualifiedName,
    column: Option<Ident>,
    /// The new comment, or None to remove it.
    comment: Option<Literal>,
}

impl SetComment {
    pub fn new(table: &TableInfo, spec: &SetCommentSpec) -> ZdmResult<Self> {
        let column = match &spec.column {
            Some(c) => Some(require_column(table, c)?.name.clone()),
            None => None,
        };
        Ok(SetComment {
            table: table.name.clone(),
            column,
            comment: spec.comment.as_deref().map(Literal::new),
        })
    }
}

impl Operation for SetComment {
    fn claimed_columns(&self) -> Vec<String> {
        self.column.iter().map(|c| c.raw().to_string()).collect()
    }

    fn default_name(&self) -> String {
        let on = match &self.column {
            Some(c) => format!("{}_{}", self.table.name.raw(), c.raw()),
            None => self.table.name.raw().to_string(),
        };
        fit_name(&format!("{on}_comment"))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let (object, what) = match &self.column {
            Some(c) => (format!("COLUMN {t}.{c}"), format!("column {}", c.raw())),
            None => (format!("TABLE {t}"), format!("table {}", self.table.name.raw())),
        };
        let text = self
            .comment
            .as_ref()
            .map(|l| l.to_string())
            .unwrap_or_else(|| "NULL".into());
        Ok(Plan {
            complete: vec![Step::locked(
                format!("comment of {what}: catalog only"),
                format!("COMMENT ON {object} IS {text}"),
                &t,
                LockMode::ShareUpdateExclusive,
            )],
            ..Default::default()
        })
    }
}
