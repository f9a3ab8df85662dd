//! Containers: records, bundles and the verbs on them (berthd's side).
//!
//! (Being built: see options.rs and spec.rs for what exists.)

pub mod options;
pub mod spec;
