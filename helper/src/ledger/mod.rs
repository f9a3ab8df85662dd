//! The ledger: every resource an app makes, written to the state database
//! *before* it is made.
//!
//! An install appends an entry (`made = 0`), makes the resource, and marks
//! the entry made (adding what was learnt, like a container's id). An
//! uninstall, or the roll-back of a failed, cancelled or crashed install,
//! walks the entries backwards and removes each resource, deleting the
//! entry once the resource is gone. So after a `kill -9` at any moment the
//! ledger lists a superset of what exists: an entry whose resource was
//! never made is removed as "already gone", and nothing that was made is
//! missing from it.
//!
//! Removal of every kind is idempotent (removing what is not there
//! succeeds), because a crash can come between removing a resource and
//! deleting its entry.
//!
//! Two kinds record things that may have existed before the install and
//! must then survive its roll-back: an [`Resource::Image`] that was already
//! in the store (`pulled: false`) and a [`Resource::Volume`] kept by an
//! earlier uninstall (`created: false`).

use serde::{Deserialize, Serialize};

use crate::state::LedgerRow;

/// One resource of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Resource {
    /// `<root>/apps/<id>/`: the app's files as installed (its `app.toml`,
    /// Compose file, icon and variables).
    AppDir { path: String },
    /// An image the app runs. `pulled`: the install pulled it (it was not
    /// in the store before), so the uninstall may remove it.
    Image { reference: String, pulled: bool },
    /// A named volume `<app>_<name>` at `path` (its `_data` inside).
    /// `created`: this install made it (otherwise it is kept data found
    /// again, which a roll-back leaves alone).
    Volume {
        name: String,
        path: String,
        created: bool,
    },
    /// The app's network: a bridge, an nftables table, a record.
    Network { name: String },
    /// A container, by name (its id is known once it is made).
    Container {
        name: String,
        #[serde(default)]
        id: String,
        service: String,
    },
    /// The container's place on the network: its netns, veth and address.
    Endpoint {
        network: String,
        container: String,
        #[serde(default)]
        container_id: String,
    },
    /// The container's published ports (nftables map elements).
    Ports {
        network: String,
        container: String,
        #[serde(default)]
        container_id: String,
        /// What was published, for people: `127.0.0.1:8091->8080/tcp`.
        #[serde(default)]
        published: Vec<String>,
    },
}

impl Resource {
    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::AppDir { .. } => "app-dir",
            Resource::Image { .. } => "image",
            Resource::Volume { .. } => "volume",
            Resource::Network { .. } => "network",
            Resource::Container { .. } => "container",
            Resource::Endpoint { .. } => "endpoint",
            Resource::Ports { .. } => "ports",
        }
    }

    /// The `name` column: what the resource is called.
    pub fn name(&self) -> &str {
        match self {
            Resource::AppDir { path } => path,
            Resource::Image { reference, .. } => reference,
            Resource::Volume { name, .. } => name,
            Resource::Network { name } => name,
            Resource::Container { name, .. } => name,
            Resource::Endpoint { container, .. } => container,
            Resource::Ports { container, .. } => container,
        }
    }

    /// In words, for reports: `container hello-web-1`.
    pub fn describe(&self) -> String {
        match self {
            Resource::AppDir { path } => format!("app files {path}"),
            Resource::Image { reference, .. } => format!("image {reference}"),
            Resource::Volume { name, path, .. } => format!("volume {name} ({path})"),
            Resource::Network { name } => format!("network {name}"),
            Resource::Container { name, .. } => format!("container {name}"),
            Resource::Endpoint {
                network, container, ..
            } => format!("address of {container} on network {network}"),
            Resource::Ports {
                container,
                published,
                ..
            } => {
                if published.is_empty() {
                    format!("published ports of {container}")
                } else {
                    format!("published ports of {container} ({})", published.join(", "))
                }
            }
        }
    }
}

/// A ledger entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    /// False: it was about to be made when the ledger was last written;
    /// it may or may not exist.
    pub made: bool,
    pub resource: Resource,
}

impl Entry {
    /// Read a row; a row that does not parse (a newer berthd wrote it)
    /// is an error naming it.
    pub fn from_row(row: &LedgerRow) -> Result<Entry, String> {
        let resource: Resource = serde_json::from_str(&row.detail).map_err(|e| {
            format!(
                "ledger entry {} of app {} ({} {}) cannot be read: {e}",
                row.seq, row.app, row.kind, row.name
            )
        })?;
        Ok(Entry {
            seq: row.seq,
            made: row.made,
            resource,
        })
    }
}

/// The `detail` column: the resource as JSON.
pub fn detail(r: &Resource) -> String {
    serde_json::to_string(r).expect("resources serialise")
}

/// The order to remove in: last made first.
pub fn removal_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.seq));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_round_trip_through_a_row() {
        let r = Resource::Container {
            name: "hello-web-1".into(),
            id: String::new(),
            service: "web".into(),
        };
        let row = LedgerRow {
            app: "hello".into(),
            seq: 3,
            kind: r.kind().into(),
            name: r.name().into(),
            detail: detail(&r),
            made: false,
        };
        let e = Entry::from_row(&row).unwrap();
        assert_eq!(e.resource, r);
        assert!(!e.made);
        assert_eq!(e.resource.describe(), "container hello-web-1");
    }

    #[test]
    fn a_row_from_a_newer_berthd_is_named() {
        let row = LedgerRow {
            app: "hello".into(),
            seq: 9,
            kind: "gpu".into(),
            name: "x".into(),
            detail: r#"{"kind":"gpu"}"#.into(),
            made: true,
        };
        let e = Entry::from_row(&row).unwrap_err();
        assert!(e.contains("entry 9 of app hello (gpu x)"), "{e}");
    }

    #[test]
    fn removal_goes_backwards() {
        let mk = |seq, name: &str| Entry {
            seq,
            made: true,
            resource: Resource::Network { name: name.into() },
        };
        let entries = vec![mk(1, "a"), mk(3, "c"), mk(2, "b")];
        let order: Vec<&str> = removal_order(&entries)
            .iter()
            .map(|e| e.resource.name())
            .collect();
        assert_eq!(order, ["c", "b", "a"]);
    }
}
