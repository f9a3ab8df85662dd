//! The catalogs berthd knows: `berth catalog list|add PATH|remove NAME`.
//!
//! One small JSON file, `<root>/catalogs.json`:
//!
//! ```json
//! { "catalogs": [
//!     { "name": "default", "path": "/usr/share/berth/catalog/default", "vars": {} },
//!     { "name": "demo", "path": "/opt/berth/catalog/demo",
//!       "vars": { "BERTH_DEMO_REGISTRY": "127.0.0.1:5000" } } ] }
//! ```
//!
//! Each change is written to `catalogs.json.tmp`, synced, and renamed over
//! the file (then the directory is synced), so a crash leaves either the old
//! list or the new one. A [`Catalogs`] is the file's contents in memory;
//! berthd keeps one behind a lock, so changes do not race.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{load_catalog, Catalog, INDEX_FILE};
use super::compose::is_dns_label;
use super::interpolate::{valid_name, Vars};
use super::Error;

/// The file under berthd's root.
pub const FILE_NAME: &str = "catalogs.json";

/// One known catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// What `berth catalog remove` takes: a DNS label.
    pub name: String,
    /// Absolute: the catalog's directory, or its `catalog.toml`.
    pub path: PathBuf,
    /// Values for `${NAME}` in its apps' Compose files.
    #[serde(default)]
    pub vars: Vars,
}

impl CatalogEntry {
    /// Load the catalog (its apps, and the problems of those that fail).
    pub fn load(&self) -> Result<Catalog, Error> {
        load_catalog(&self.path, &self.vars)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    catalogs: Vec<CatalogEntry>,
}

/// The list of known catalogs, as stored in `<root>/catalogs.json`.
#[derive(Debug)]
pub struct Catalogs {
    path: PathBuf,
    file: File,
}

impl Catalogs {
    /// Read `<root>/catalogs.json`; no file is an empty list.
    pub fn open(root: &Path) -> Result<Catalogs, Error> {
        let path = root.join(FILE_NAME);
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::InvalidArgument(format!(
                    "the list of catalogs {} is damaged ({e}); fix it, or remove it and add the catalogs again",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(source) => {
                return Err(Error::Io {
                    what: "reading the list of catalogs",
                    path,
                    source,
                })
            }
        };
        // Its variables are secrets (tokens, passwords): an older berthd
        // left it 0644.
        crate::fsmode::set_mode(&path, crate::fsmode::FILE).map_err(|source| Error::Io {
            what: "setting the mode of",
            path: path.clone(),
            source,
        })?;
        Ok(Catalogs { path, file })
    }

    /// The catalogs, in the order they were added.
    pub fn list(&self) -> &[CatalogEntry] {
        &self.file.catalogs
    }

    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.file.catalogs.iter().find(|c| c.name == name)
    }

    /// Add the catalog at `path` (absolute: a directory or a
    /// `catalog.toml`), named `name` or else after its directory, with
    /// `vars` for its Compose files; saved before returning. The catalog's
    /// apps are not checked here: load it to see them and their problems.
    pub fn add(
        &mut self,
        path: &Path,
        name: Option<&str>,
        vars: Vars,
    ) -> Result<&CatalogEntry, Error> {
        if !path.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "the catalog path {} is relative: give an absolute path",
                path.display()
            )));
        }
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!(
                    "there is no catalog at {}: give a directory of apps, or a {INDEX_FILE}",
                    path.display()
                ))
            } else {
                Error::Io {
                    what: "looking at the catalog",
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        let is_index = meta.is_file() && path.file_name().is_some_and(|n| n == INDEX_FILE);
        if !meta.is_dir() && !is_index {
            return Err(Error::InvalidArgument(format!(
                "{} is not a catalog: give a directory of apps, or a {INDEX_FILE}",
                path.display()
            )));
        }
        let path = std::fs::canonicalize(path).map_err(|source| Error::Io {
            what: "resolving the catalog path",
            path: path.to_path_buf(),
            source,
        })?;
        let name = match name {
            Some(n) => n.to_string(),
            None => {
                let dir = if is_index {
                    path.parent()
                } else {
                    Some(&*path)
                };
                let derived = dir
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().to_lowercase())
                    .unwrap_or_default();
                if !is_dns_label(&derived) {
                    return Err(Error::InvalidArgument(format!(
                        "cannot name the catalog after its directory (`{derived}`): give a name \
                         of lowercase letters, digits and `-` (berth catalog add PATH --name NAME)"
                    )));
                }
                derived
            }
        };
        if !is_dns_label(&name) {
            return Err(Error::InvalidArgument(format!(
                "`{name}` is not a valid catalog name: use 1 to 63 lowercase letters, digits and `-`"
            )));
        }
        check_var_names(&vars)?;
        if self.get(&name).is_some() {
            return Err(Error::Conflict(format!(
                "there is already a catalog named `{name}`: remove it first, or give another name"
            )));
        }
        if let Some(other) = self.file.catalogs.iter().find(|c| c.path == path) {
            return Err(Error::Conflict(format!(
                "{} is already the catalog `{}`",
                path.display(),
                other.name
            )));
        }
        self.file.catalogs.push(CatalogEntry { name, path, vars });
        if let Err(e) = self.save() {
            self.file.catalogs.pop();
            return Err(e);
        }
        Ok(self.file.catalogs.last().expect("just added"))
    }

    /// Replace the variables of the catalog `name` (for instance when the
    /// demo registry moved to another port); saved before returning.
    pub fn set_vars(&mut self, name: &str, vars: Vars) -> Result<&CatalogEntry, Error> {
        check_var_names(&vars)?;
        let i = self.position(name)?;
        let old = std::mem::replace(&mut self.file.catalogs[i].vars, vars);
        if let Err(e) = self.save() {
            self.file.catalogs[i].vars = old;
            return Err(e);
        }
        Ok(&self.file.catalogs[i])
    }

    fn position(&self, name: &str) -> Result<usize, Error> {
        self.file
            .catalogs
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.file.catalogs.iter().map(|c| c.name.as_str()).collect();
                Error::NotFound(format!(
                    "there is no catalog named `{name}` (catalogs: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// Forget the catalog `name` (its files stay); saved before returning.
    pub fn remove(&mut self, name: &str) -> Result<CatalogEntry, Error> {
        let i = self.position(name)?;
        let removed = self.file.catalogs.remove(i);
        if let Err(e) = self.save() {
            self.file.catalogs.insert(i, removed);
            return Err(e);
        }
        Ok(removed)
    }

    fn save(&self) -> Result<(), Error> {
        let mut bytes = serde_json::to_vec_pretty(&self.file).expect("catalogs serialise");
        bytes.push(b'\n');
        // 0600: the variables are secrets.
        crate::fsmode::write_durable(&self.path, &bytes).map_err(|source| Error::Io {
            what: "writing",
            path: self.path.clone(),
            source,
        })?;
        Ok(())
    }
}

fn check_var_names(vars: &Vars) -> Result<(), Error> {
    for key in vars.keys() {
        if !valid_name(key) {
            return Err(Error::InvalidArgument(format!(
                "`{key}` is not a variable name: use letters, digits and `_`, not starting with a digit"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_list_remove_persist() {
        let root = tempfile::tempdir().unwrap();
        let cats = tempfile::tempdir().unwrap();
        let demo = cats.path().join("demo");
        let other = cats.path().join("Other Apps");
        std::fs::create_dir_all(&demo).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join(INDEX_FILE), "title = \"x\"\n").unwrap();

        let mut c = Catalogs::open(root.path()).unwrap();
        assert!(c.list().is_empty());
        let e = c
            .add(
                &demo,
                None,
                vars(&[("BERTH_DEMO_REGISTRY", "127.0.0.1:5000")]),
            )
            .unwrap()
            .clone();
        assert_eq!(e.name, "demo");
        assert_eq!(e.path, std::fs::canonicalize(&demo).unwrap());
        c.add(&other.join(INDEX_FILE), Some("other"), Vars::new())
            .unwrap();

        // Persisted, in order, and read back the same.
        let again = Catalogs::open(root.path()).unwrap();
        assert_eq!(again.list(), c.list());
        assert_eq!(
            again.list().iter().map(|c| &c.name[..]).collect::<Vec<_>>(),
            ["demo", "other"]
        );
        assert_eq!(
            again.get("demo").unwrap().vars["BERTH_DEMO_REGISTRY"],
            "127.0.0.1:5000"
        );
        assert!(!root.path().join("catalogs.json.tmp").exists());

        c.set_vars("demo", vars(&[("BERTH_DEMO_REGISTRY", "127.0.0.1:5001")]))
            .unwrap();
        assert_eq!(
            Catalogs::open(root.path())
                .unwrap()
                .get("demo")
                .unwrap()
                .vars["BERTH_DEMO_REGISTRY"],
            "127.0.0.1:5001"
        );
        assert!(c.set_vars("demo", vars(&[("A-B", "x")])).is_err());
        assert!(matches!(
            c.set_vars("nope", Vars::new()),
            Err(Error::NotFound(_))
        ));

        let removed = c.remove("demo").unwrap();
        assert_eq!(removed.name, "demo");
        assert!(demo.exists(), "removing a catalog keeps its files");
        let again = Catalogs::open(root.path()).unwrap();
        assert_eq!(again.list().len(), 1);
        assert_eq!(again.list()[0].name, "other");
    }

    #[test]
    fn refusals_say_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let cats = tempfile::tempdir().unwrap();
        let demo = cats.path().join("demo");
        let odd = cats.path().join("Odd Name");
        std::fs::create_dir_all(&demo).unwrap();
        std::fs::create_dir_all(&odd).unwrap();
        let file = cats.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        let mut c = Catalogs::open(root.path()).unwrap();

        let e = c.add(Path::new("demo"), None, Vars::new()).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = c
            .add(&cats.path().join("missing"), None, Vars::new())
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        let e = c.add(&file, None, Vars::new()).unwrap_err();
        assert!(e.to_string().contains("not a catalog"), "{e}");
        let e = c.add(&odd, None, Vars::new()).unwrap_err();
        assert!(e.to_string().contains("--name"), "{e}");
        let e = c.add(&demo, Some("Bad_Name"), Vars::new()).unwrap_err();
        assert!(e.to_string().contains("not a valid catalog name"), "{e}");
        let e = c.add(&demo, None, vars(&[("1BAD", "x")])).unwrap_err();
        assert!(e.to_string().contains("`1BAD`"), "{e}");

        c.add(&demo, None, Vars::new()).unwrap();
        let e = c.add(&odd, Some("demo"), Vars::new()).unwrap_err();
        assert!(
            matches!(&e, Error::Conflict(m) if m.contains("already a catalog named `demo`")),
            "{e}"
        );
        let e = c.add(&demo, Some("again"), Vars::new()).unwrap_err();
        assert!(
            matches!(&e, Error::Conflict(m) if m.contains("already the catalog `demo`")),
            "{e}"
        );
        let e = c.remove("nope").unwrap_err();
        assert!(
            matches!(&e, Error::NotFound(m) if m.contains("(catalogs: demo)")),
            "{e}"
        );
    }

    #[test]
    fn damaged_file_is_reported() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join(FILE_NAME), "{ not json").unwrap();
        let e = Catalogs::open(root.path()).unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("remove it"), "{e}");
    }
}
