//! The swap's `lock_timeout` and attempts, from the call's arguments or the settings.

use crate::error::{ZdmError, ZdmResult};
use crate::executor::RetryPolicy;
use pgrx::prelude::*;

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
