//! `state`: the OCI state of a container, and the list of all of them.

use std::path::Path;

use super::container::Container;
use super::state::OciState;
use super::{Context, Result};

impl Container {
    /// The OCI state of the container `id` (status derived now).
    pub fn state(state_root: &Path, id: &str) -> Result<OciState> {
        Ok(Container::load(state_root, id)?.oci_state())
    }

    /// Every container under `state_root`.
    pub fn list(state_root: &Path) -> Result<Vec<Container>> {
        let entries = match std::fs::read_dir(state_root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.ctx(|| format!("listing {}", state_root.display()))?,
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.ctx(|| format!("listing {}", state_root.display()))?;
            if let Some(id) = entry.file_name().to_str() {
                if let Ok(c) = Container::load(state_root, id) {
                    out.push(c);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
