//! berthd's configuration file (`/etc/berth/config.toml`, or `--config`).
//!
//! ```toml
//! [registries]
//! insecure = ["registry.lan:5000"]   # plain HTTP allowed (loopback always is)
//!
//! [limits]                           # decompression bombs: see crate::layers
//! max_layer_bytes = 17179869184      # decompressed bytes per layer
//! max_layer_entries = 300000         # files per layer
//! max_layer_ratio = 100              # decompressed : compressed bytes of a layer,
//! layer_ratio_floor = 268435456      #   enforced past this many bytes; 0 = off
//! min_free_disk = 1073741824         # pulls keep this much of the disk free,
//! min_free_disk_percent = 0          #   or this share of it if more; 0 and 0 = off
//! max_parallel_downloads = 3
//!
//! [access]
//! authority = "auto"                 # who decides for users other than root:
//!                                    # "polkit", "group", or "auto": polkit where
//!                                    # polkitd runs or can be started, else the group
//! group = "berth"                    # may manage Berth where polkit does not decide
//!                                    # (membership equals root)
//!
//! [userns]
//! user = "berth"                     # --userns=auto takes host ids from this user's
//!                                    # ranges in /etc/subuid and /etc/subgid
//! ```
//!
//! Every key is optional. Unknown keys are an error naming the key, so a typo
//! does not silently fall back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the config lives unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/berth/config.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub registries: Registries,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub userns: Userns,
}

/// Where `--userns=auto` containers get their host ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Userns {
    /// The user whose entries in /etc/subuid and /etc/subgid are the host
    /// ids to hand out; without entries, a built-in range is used (see
    /// [`crate::containers::userns`]).
    pub user: String,
}

impl Default for Userns {
    fn default() -> Self {
        Userns {
            user: "berth".into(),
        }
    }
}

/// Who decides for callers other than root (see `dbus::auth`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    /// Decided once at start; never per call.
    pub authority: AuthorityChoice,
    /// Where the group decides, its members may do everything root may
    /// (like Docker's group): membership equals root.
    pub group: String,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            authority: AuthorityChoice::Auto,
            group: "berth".into(),
        }
    }
}

/// `[access] authority`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorityChoice {
    /// polkit where polkitd runs on the bus or the bus can start it, else
    /// the group.
    #[default]
    Auto,
    /// Always polkit (a call is refused while polkitd cannot be asked).
    Polkit,
    /// Always the group, even where polkit runs.
    Group,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Hosts (`name[:port]`) reached over plain HTTP.
    #[serde(default)]
    pub insecure: Vec<String>,
}

/// `[limits]`; the layer limits and their defaults are explained at
/// [`crate::layers::Limits`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_layer_bytes: u64,
    pub max_layer_entries: u64,
    pub max_layer_ratio: u64,
    pub layer_ratio_floor: u64,
    pub min_free_disk: u64,
    pub min_free_disk_percent: u64,
    pub max_parallel_downloads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let l = crate::layers::Limits::default();
        Limits {
            max_layer_bytes: l.max_bytes,
            max_layer_entries: l.max_entries,
            max_layer_ratio: l.max_ratio,
            layer_ratio_floor: l.ratio_floor,
            min_free_disk: l.min_free_bytes,
            min_free_disk_percent: l.min_free_percent,
            max_parallel_downloads: 3,
        }
    }
}

impl Limits {
    pub fn layer_limits(&self) -> crate::layers::Limits {
        crate::layers::Limits {
            max_bytes: self.max_layer_bytes,
            max_entries: self.max_layer_entries,
            max_ratio: self.max_layer_ratio,
            ratio_floor: self.layer_ratio_floor,
            min_free_bytes: self.min_free_disk,
            min_free_percent: self.min_free_disk_percent,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Load `path`. A missing file is fine when it is the default path (no
    /// config yet); a missing file the user named is an error.
    pub fn load(path: &Path, must_exist: bool) -> Result<Config, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default())
            }
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Config::parse(&text).map_err(|message| Error::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.userns.user.is_empty() || c.userns.user.contains(':') {
            return Err("userns.user must be a user name as /etc/subuid writes it".into());
        }
        if c.limits.max_parallel_downloads == 0 {
            return Err("limits.max_parallel_downloads must be at least 1".into());
        }
        if c.limits.min_free_disk_percent > 100 {
            return Err("limits.min_free_disk_percent is a percentage: 0 to 100".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_default() {
        let c = Config::parse("").unwrap();
        assert!(c.registries.insecure.is_empty());
        assert_eq!(c.limits.max_parallel_downloads, 3);
    }

    #[test]
    fn reads_keys() {
        let c = Config::parse(
            "[registries]\ninsecure = [\"r.lan:5000\"]\n[limits]\nmax_layer_bytes = 10\n",
        )
        .unwrap();
        assert_eq!(c.registries.insecure, vec!["r.lan:5000"]);
        assert_eq!(c.limits.max_layer_bytes, 10);
    }

    #[test]
    fn userns_user() {
        assert_eq!(Config::parse("").unwrap().userns.user, "berth");
        let c = Config::parse("[userns]\nuser = \"containers\"\n").unwrap();
        assert_eq!(c.userns.user, "containers");
        assert!(Config::parse("[userns]\nuser = \"\"\n").is_err());
    }

    #[test]
    fn layer_limits() {
        let d = Config::parse("").unwrap().limits.layer_limits();
        assert_eq!(d, crate::layers::Limits::default());
        let c = Config::parse(
            "[limits]\nmax_layer_ratio = 0\nlayer_ratio_floor = 5\nmin_free_disk = 7\n\
             min_free_disk_percent = 9\nmax_layer_entries = 11\n",
        )
        .unwrap();
        let l = c.limits.layer_limits();
        assert_eq!(
            (
                l.max_ratio,
                l.ratio_floor,
                l.min_free_bytes,
                l.min_free_percent,
                l.max_entries
            ),
            (0, 5, 7, 9, 11)
        );
        let e = Config::parse("[limits]\nmin_free_disk_percent = 101\n").unwrap_err();
        assert!(e.contains("min_free_disk_percent"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[limits]\nmax_layer_byte = 10\n").unwrap_err();
        assert!(e.contains("max_layer_byte"), "{e}");
    }
}
