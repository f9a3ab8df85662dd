//! Tauri commands: each converts its arguments, makes one call (or one
//! subscription) through `berth-api`, and converts the answer. berthd holds
//! all the logic; nothing here decides anything about apps.

pub mod acl;
pub mod apps;
pub mod catalog;
pub mod jobs;
pub mod status;
pub mod storage;
pub mod watch;

use serde::de::DeserializeOwned;

use crate::error::{Result, UiError};

/// berthd answers some calls with JSON documents (the shapes in
/// `berth_api::apps`); read one.
pub(crate) fn from_json<T: DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| {
        UiError::new(
            "failed",
            format!("berthd sent {what} this window cannot read: {e}"),
            "Berth's window and berthd are probably of different versions; install both \
             from the same release.",
        )
    })
}
