//! The window's link to berthd: one bus connection, made when first needed
//! and made again after the bus or berthd went away.
//!
//! Commands ask [`Helper::proxy`] for a proxy; when a call fails because the
//! bus is gone, [`Helper::check`] drops the connection so the next call
//! connects afresh. That is how the window recovers by itself once the user
//! starts berthd or the bus again.

use berth_api::Helper1Proxy;
use tokio::sync::Mutex;

use crate::error::{Result, UiError};

/// Shared by every command (Tauri managed state).
#[derive(Default)]
pub struct Helper {
    conn: Mutex<Option<zbus::Connection>>,
}

impl Helper {
    /// The bus connection, connecting first if there is none.
    pub async fn connection(&self) -> Result<zbus::Connection> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let c = berth_api::connect().await.map_err(UiError::from)?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// A proxy for berthd's main object.
    pub async fn proxy(&self) -> Result<Helper1Proxy<'static>> {
        let conn = self.connection().await?;
        Helper1Proxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| self.forget_on(e.into()))
    }

    /// Map a call's error, and forget the connection when the bus is gone.
    pub fn check<T>(&self, r: std::result::Result<T, berth_api::Error>) -> Result<T> {
        r.map_err(|e| self.forget_on(e.into()))
    }

    fn forget_on(&self, e: UiError) -> UiError {
        if e.kind == "no_bus" {
            if let Ok(mut conn) = self.conn.try_lock() {
                *conn = None;
            }
        }
        e
    }
}
