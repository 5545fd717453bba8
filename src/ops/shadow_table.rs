//! `create_shadow_table`: restructure a whole table through a shadow copy.
//! The operation lives with the rest of the shadow capability, in
//! `shadow::plan`; `ops` builds it from here like every other operation.

pub use crate::shadow::plan::{Probe, ShadowTable};
