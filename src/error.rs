//! One error type for every refusal pg_zdm makes.
//!
//! Every refusal carries a SQLSTATE, a message naming the object, and (nearly
//! always) a hint. Code below the SQL-facing API returns `Result<_, ZdmError>`;
//! the API layer turns the error into a PostgreSQL ERROR with [`ZdmError::raise`].
//! Keeping the type free of server calls lets the pure modules (spec parsing,
//! SQL generation, the state machine) use it in plain unit tests.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::fmt;

pub type ZdmResult<T> = Result<T, ZdmError>;

#[derive(Debug, Clone, PartialEq)]
pub struct ZdmError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ZdmError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        ZdmError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// 22023: a parameter that cannot be accepted (bad spec field, bad batch size...).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
    }

    /// 42P01 / 42703 and friends are built at the call site; this one is for
    /// an unknown migration name, which is an undefined object (42704).
    pub fn unknown_migration(name: &str) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("migration \"{name}\" does not exist"),
        )
        .hint("List migrations with: SELECT name, phase FROM zdm.migrations;")
    }

    /// 55000: the object is not in the state this action needs.
    pub fn wrong_state(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message)
    }

    /// 0A000: something pg_zdm deliberately does not do.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, message)
    }

    /// Raise as a PostgreSQL ERROR. Never returns.
    pub fn raise(self) -> ! {
        let mut report = pgrx::pg_sys::panic::ErrorReport::new(self.code, self.message, "pg_zdm");
        if let Some(d) = self.detail {
            report = report.set_detail(d);
        }
        if let Some(h) = self.hint {
            report = report.set_hint(h);
        }
        report.report(pgrx::PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }

    /// The five-character SQLSTATE, for reports and tests.
    pub fn sqlstate(&self) -> String {
        sqlstate_of(self.code)
    }
}

/// Decode PostgreSQL's packed SQLSTATE (MAKE_SQLSTATE) back into its five characters.
pub fn sqlstate_of(code: PgSqlErrorCode) -> String {
    let mut v = code as i32;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        s.push((((v & 0x3F) as u8) + b'0') as char);
        v >>= 6;
    }
    s
}

impl fmt::Display for ZdmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate())
    }
}

/// Unwrap a result inside a `#[pg_extern]`, raising the error as a PostgreSQL ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for ZdmResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}

/// Internal SPI failures are bugs or catalog races, not user errors: keep the message.
pub fn spi_err(e: pgrx::spi::Error) -> ZdmError {
    ZdmError::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("pg_zdm catalog query failed: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_round_trips() {
        assert_eq!(sqlstate_of(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE), "55P03");
        assert_eq!(sqlstate_of(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE), "42P01");
        assert_eq!(ZdmError::unknown_migration("m").sqlstate(), "42704");
    }
}
