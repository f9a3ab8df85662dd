//! The page's TypeScript types, generated from the Rust types that cross
//! to it (ts-rs), into `ui/src/bindings/`. A test checks the committed
//! files match; `BERTH_WRITE_BINDINGS=1 cargo test -p berth-app bindings`
//! writes them anew after a type changed.

use std::path::Path;

use ts_rs::TS;

/// Write every type the page uses, with what they refer to, into `dir`.
pub fn export(dir: &Path) -> Result<(), ts_rs::ExportError> {
    use crate::commands::{status::HelperStatus, storage::Storage};
    use crate::events::*;
    JobEvent::export_all_to(dir)?;
    StatsEvent::export_all_to(dir)?;
    LogEvent::export_all_to(dir)?;
    AppsEvent::export_all_to(dir)?;
    HelperStatus::export_all_to(dir)?;
    Storage::export_all_to(dir)?;
    berth_api::CatalogApp::export_all_to(dir)?;
    berth_api::CatalogInfo::export_all_to(dir)?;
    berth_api::PruneReport::export_all_to(dir)?;
    berth_api::VolumePruneReport::export_all_to(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn read_dir(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        (name, std::fs::read_to_string(e.path()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    use super::*;

    #[test]
    fn bindings_match_the_rust_types() {
        let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings");
        let fresh = tempfile::tempdir().unwrap();
        export(fresh.path()).unwrap();
        let fresh = read_dir(fresh.path());
        if std::env::var_os("BERTH_WRITE_BINDINGS").is_some() {
            let _ = std::fs::remove_dir_all(&committed);
            std::fs::create_dir_all(&committed).unwrap();
            for (name, text) in &fresh {
                std::fs::write(committed.join(name), text).unwrap();
            }
            return;
        }
        assert!(
            fresh == read_dir(&committed),
            "ui/src/bindings is out of date with the Rust types; write it anew with \
             `BERTH_WRITE_BINDINGS=1 cargo test -p berth-app bindings`"
        );
    }
}
