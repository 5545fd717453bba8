//! A migration's own backfill settings: the `settings` column of
//! `zdm.migrations`, set by `zdm.set_backfill_settings()`; each value left
//! unset falls back to its zdm.* setting (`guc`).

use crate::error::{ZdmError, ZdmResult};
use crate::guc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Backfill settings of one migration: the zdm.* GUCs, overridden by the
/// migration's own `settings` (zdm.set_backfill_settings()).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_delay_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_batch_ms: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replication_lag_ms: Option<i32>,
}

/// Settings with every value resolved.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Effective {
    pub batch_size: i32,
    pub batch_delay_ms: i32,
    pub target_batch_ms: i32,
    pub max_replication_lag_ms: i32,
}

impl BackfillSettings {
    pub fn parse(v: &Value) -> ZdmResult<BackfillSettings> {
        let s: BackfillSettings = serde_json::from_value(v.clone()).map_err(|e| {
            ZdmError::invalid_parameter(format!("invalid backfill settings: {e}"))
                .hint("Keys: batch_size, batch_delay_ms, target_batch_ms, max_replication_lag_ms (integers; null resets to the zdm.* setting).")
        })?;
        let check = |name: &str, v: Option<i32>, min: i32| match v {
            Some(x) if x < min => Err(ZdmError::invalid_parameter(format!(
                "{name} must be at least {min}, got {x}"
            ))),
            _ => Ok(()),
        };
        check("batch_size", s.batch_size, 1)?;
        check("batch_delay_ms", s.batch_delay_ms, 0)?;
        check("target_batch_ms", s.target_batch_ms, 0)?;
        check("max_replication_lag_ms", s.max_replication_lag_ms, 0)?;
        Ok(s)
    }

    /// These settings with the keys `given` names replaced by its values (a
    /// null value unsets its key); keys it does not name are kept.
    pub fn overridden_by(&self, given: &Value) -> ZdmResult<BackfillSettings> {
        let parsed = BackfillSettings::parse(given)?;
        let named = |key: &str| given.as_object().is_some_and(|o| o.contains_key(key));
        let pick = |key: &str, new: Option<i32>, old: Option<i32>| if named(key) { new } else { old };
        Ok(BackfillSettings {
            batch_size: pick("batch_size", parsed.batch_size, self.batch_size),
            batch_delay_ms: pick("batch_delay_ms", parsed.batch_delay_ms, self.batch_delay_ms),
            target_batch_ms: pick("target_batch_ms", parsed.target_batch_ms, self.target_batch_ms),
            max_replication_lag_ms: pick(
                "max_replication_lag_ms",
                parsed.max_replication_lag_ms,
                self.max_replication_lag_ms,
            ),
        })
    }

    pub fn effective(&self) -> Effective {
        Effective {
            batch_size: self.batch_size.unwrap_or_else(|| guc::BATCH_SIZE.get()),
            batch_delay_ms: self.batch_delay_ms.unwrap_or_else(|| guc::BATCH_DELAY_MS.get()),
            target_batch_ms: self.target_batch_ms.unwrap_or_else(|| guc::TARGET_BATCH_TIME_MS.get()),
            max_replication_lag_ms: self
                .max_replication_lag_ms
                .unwrap_or_else(|| guc::MAX_REPLICATION_LAG_MS.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_parse_and_refuse() {
        let s = BackfillSettings::parse(&json!({"batch_size": 500, "batch_delay_ms": 10})).unwrap();
        assert_eq!(s.batch_size, Some(500));
        assert_eq!(
            BackfillSettings::parse(&json!({"batch_size": 0}))
                .unwrap_err()
                .sqlstate(),
            "22023"
        );
        assert_eq!(
            BackfillSettings::parse(&json!({"colour": 1})).unwrap_err().sqlstate(),
            "22023"
        );
    }

    #[test]
    fn overrides_replace_only_the_keys_given() {
        let before = BackfillSettings {
            batch_size: Some(500),
            batch_delay_ms: Some(10),
            ..Default::default()
        };
        let after = before
            .overridden_by(&json!({"batch_delay_ms": null, "target_batch_ms": 200}))
            .unwrap();
        assert_eq!(
            after,
            BackfillSettings {
                batch_size: Some(500),
                batch_delay_ms: None,
                target_batch_ms: Some(200),
                max_replication_lag_ms: None,
            }
        );
        assert!(before.overridden_by(&json!({"batch_size": -1})).is_err());
    }
}
