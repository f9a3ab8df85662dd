//! What a person asks for with `berth run`, checked before anything is made.

pub use berth_api::options::*;
pub use berth_api::{Network, RunOptions, UsernsMode, Volume};

/// Check everything that can be checked without the image.
pub fn validate(o: &RunOptions) -> Result<(), OptionError> {
    if let Some(n) = &o.name {
        check_name(n)?;
    }
    for e in &o.env {
        check_env(e)?;
    }
    if let Some(w) = &o.workdir {
        if !w.starts_with('/') {
            return Err(OptionError(format!(
                "working directory `{w}` must be an absolute path"
            )));
        }
    }
    for v in &o.volumes {
        if !is_clean_absolute(&v.container) {
            return Err(OptionError(format!(
                "volume {}: the container path `{}` must be absolute and without `..`",
                v.host, v.container
            )));
        }
        if !std::path::Path::new(&v.host).exists() {
            return Err(OptionError(format!(
                "volume host path {} does not exist; create it first",
                v.host
            )));
        }
    }
    if let Some(ns) = &o.netns {
        check_netns(ns, o)?;
    }
    Ok(())
}

/// `netns`: an absolute path, and only with the settings that can join it.
fn check_netns(ns: &str, o: &RunOptions) -> Result<(), OptionError> {
    if !is_clean_absolute(ns) {
        return Err(OptionError(format!(
            "network namespace `{ns}` must be an absolute path without `..`"
        )));
    }
    if o.network == Network::Host {
        return Err(OptionError(format!(
            "`netns` ({ns}) and `network: host` cannot be used together: a container \
             joins either the host's network or a prepared network namespace"
        )));
    }
    if o.userns == UsernsMode::Auto {
        return Err(OptionError(format!(
            "`netns` ({ns}) cannot be used with `userns: auto` yet: the namespace belongs \
             to the host's user namespace and the runtime cannot join it from a user \
             namespace of the container's own; use `userns: host`"
        )));
    }
    Ok(())
}

/// Starts with `/` and has no `..` component.
fn is_clean_absolute(p: &str) -> bool {
    p.starts_with('/') && !p.split('/').any(|c| c == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_netns(ns: &str) -> RunOptions {
        RunOptions {
            netns: Some(ns.into()),
            ..RunOptions::default()
        }
    }

    #[test]
    fn netns_must_be_absolute_and_clean() {
        assert!(validate(&with_netns("/run/berth/netns/abc")).is_ok());
        for bad in ["run/berth/netns/abc", "/run/berth/../../etc/ns", ""] {
            let e = validate(&with_netns(bad)).unwrap_err().0;
            assert!(e.contains("absolute path without `..`"), "{bad}: {e}");
        }
    }

    #[test]
    fn netns_with_host_network_names_both() {
        let o = RunOptions {
            network: Network::Host,
            ..with_netns("/run/berth/netns/abc")
        };
        let e = validate(&o).unwrap_err().0;
        assert!(
            e.contains("`netns`")
                && e.contains("`network: host`")
                && e.contains("/run/berth/netns/abc"),
            "{e}"
        );
    }

    #[test]
    fn netns_with_userns_auto_is_a_clear_error() {
        let o = RunOptions {
            userns: UsernsMode::Auto,
            ..with_netns("/run/berth/netns/abc")
        };
        let e = validate(&o).unwrap_err().0;
        assert!(
            e.contains("`userns: auto`") && e.contains("userns: host"),
            "{e}"
        );
    }

    #[test]
    fn volume_container_paths_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let volume = |container: &str| RunOptions {
            volumes: vec![Volume {
                host: tmp.path().display().to_string(),
                container: container.into(),
                read_only: false,
                populate: true,
            }],
            ..RunOptions::default()
        };
        assert!(validate(&volume("/data")).is_ok());
        assert!(validate(&volume("data")).is_err());
        assert!(validate(&volume("/data/../etc")).is_err());
    }
}
