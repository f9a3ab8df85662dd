//! Parsing `berth run` options the way Docker does, with errors that name
//! the bad value and show a good one. Shared by the CLI, the app and berthd.

use crate::{UsernsMode, Volume};

/// A bad option, named, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError(pub String);

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

/// `64m`, `1g`, `512k`, `100b`, `1048576` → bytes (powers of 1024, as Docker).
pub fn parse_memory(s: &str) -> Result<u64, OptionError> {
    let err = || {
        OptionError(format!(
            "invalid memory size `{s}`: use a number with an optional unit b, k, m or g (for example 64m)"
        ))
    };
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'b')) => (&t[..i], 1u64),
        Some((i, 'k')) => (&t[..i], 1 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((_, c)) if c.is_ascii_digit() => (&t[..], 1),
        _ => return Err(err()),
    };
    let n: u64 = num.parse().map_err(|_| err())?;
    let bytes = n.checked_mul(mult).ok_or_else(err)?;
    if bytes < 6 << 20 {
        return Err(OptionError(format!(
            "memory limit `{s}` is too small: the minimum is 6m"
        )));
    }
    Ok(bytes)
}

/// `0.5`, `2` → thousandths of a CPU, at most the machine's CPU count.
pub fn parse_cpus(s: &str, online: u64) -> Result<u64, OptionError> {
    let v: f64 = s.trim().parse().map_err(|_| {
        OptionError(format!(
            "invalid --cpus value `{s}`: use a number of CPUs such as 0.5 or 2"
        ))
    })?;
    if !(v.is_finite() && v >= 0.01) {
        return Err(OptionError(format!(
            "--cpus `{s}` is too small: the minimum is 0.01"
        )));
    }
    if v > online as f64 {
        return Err(OptionError(format!(
            "--cpus `{s}` is more than this machine has ({online})"
        )));
    }
    Ok((v * 1000.0).round() as u64)
}

/// `--pids-limit`: a positive number, or -1/0 for no limit.
pub fn parse_pids(s: &str) -> Result<i64, OptionError> {
    match s.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(-1) | Ok(0) => Ok(0),
        _ => Err(OptionError(format!(
            "invalid --pids-limit `{s}`: use a positive number of processes, or -1 for no limit"
        ))),
    }
}

/// `HOSTDIR:PATH[:ro|rw]`.
pub fn parse_volume(s: &str) -> Result<Volume, OptionError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] => (*h, *c, *m),
        _ => {
            return Err(OptionError(format!(
                "invalid volume `{s}`: use HOSTDIR:PATH or HOSTDIR:PATH:ro"
            )))
        }
    };
    if !host.starts_with('/') {
        return Err(OptionError(format!(
            "volume `{s}`: the host path must be absolute (named volumes come with apps)"
        )));
    }
    if !container.starts_with('/') || container.split('/').any(|c| c == "..") {
        return Err(OptionError(format!(
            "volume `{s}`: the container path must be absolute and without `..`"
        )));
    }
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => {
            return Err(OptionError(format!(
                "volume `{s}`: unknown mode `{other}` (use ro or rw)"
            )))
        }
    };
    Ok(Volume {
        host: host.to_string(),
        container: container.to_string(),
        read_only,
        populate: false,
    })
}

/// `--userns`: `host` or `auto`.
pub fn parse_userns(s: &str) -> Result<UsernsMode, OptionError> {
    match s {
        "host" | "" => Ok(UsernsMode::Host),
        "auto" => Ok(UsernsMode::Auto),
        other => Err(OptionError(format!(
            "unknown --userns mode `{other}`: use host (the default) or auto"
        ))),
    }
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), OptionError> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(OptionError(format!(
            "invalid container name `{name}`: use 2 to 128 letters, digits, `_`, `.` or `-`, \
             starting with a letter or digit"
        )))
    }
}

/// `KEY=VALUE` (a bare `KEY` takes the value from the caller's environment
/// in the CLI; here it must already be resolved).
pub fn check_env(e: &str) -> Result<(), OptionError> {
    match e.split_once('=') {
        Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => Ok(()),
        _ => Err(OptionError(format!(
            "invalid environment variable `{e}`: use KEY=VALUE"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("8192k").unwrap(), 8 << 20);
        assert_eq!(parse_memory("7340032").unwrap(), 7 << 20);
        let e = parse_memory("1x").unwrap_err().to_string();
        assert!(e.contains("`1x`") && e.contains("64m"), "{e}");
        assert!(parse_memory("1m")
            .unwrap_err()
            .to_string()
            .contains("minimum"));
        assert!(parse_memory("").is_err());
        assert!(parse_memory("99999999999999999999g").is_err());
    }

    #[test]
    fn cpus_and_pids() {
        assert_eq!(parse_cpus("0.5", 2).unwrap(), 500);
        assert_eq!(parse_cpus("2", 2).unwrap(), 2000);
        assert!(parse_cpus("3", 2).unwrap_err().to_string().contains("(2)"));
        assert!(parse_cpus("abc", 2).is_err());
        assert!(parse_cpus("0", 2).is_err());
        assert_eq!(parse_pids("64").unwrap(), 64);
        assert_eq!(parse_pids("-1").unwrap(), 0);
        assert!(parse_pids("lots").is_err());
    }

    #[test]
    fn volumes() {
        let v = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (v.host.as_str(), v.container.as_str(), v.read_only),
            ("/srv/data", "/data", true)
        );
        assert!(!parse_volume("/a:/b").unwrap().read_only);
        assert!(parse_volume("rel:/b").is_err());
        assert!(parse_volume("/a:b").is_err());
        assert!(parse_volume("/a:/b/../c").is_err());
        assert!(parse_volume("/a:/b:rx").is_err());
        assert!(parse_volume("/a").is_err());
    }

    #[test]
    fn records_without_the_newer_fields_still_parse() {
        // A record written before `netns` and `populate` existed.
        let o: crate::RunOptions = serde_json::from_str(
            r#"{"name":"web","network":"none","volumes":[{"host":"/srv","container":"/data","read_only":true}]}"#,
        )
        .unwrap();
        assert_eq!(o.netns, None);
        assert!(!o.volumes[0].populate);
        assert!(o.volumes[0].read_only);
        assert!(
            !parse_volume("/a:/b").unwrap().populate,
            "-v never populates"
        );
        // And the new ones round-trip.
        let o = crate::RunOptions {
            netns: Some("/run/berth/netns/abc".into()),
            volumes: vec![Volume {
                host: "/var/lib/berth/volumes/app_data".into(),
                container: "/usr/share/nginx/html".into(),
                read_only: false,
                populate: true,
            }],
            ..Default::default()
        };
        let back: crate::RunOptions =
            serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn userns_modes() {
        assert_eq!(parse_userns("auto").unwrap(), UsernsMode::Auto);
        assert_eq!(parse_userns("host").unwrap(), UsernsMode::Host);
        let e = parse_userns("keep-id").unwrap_err().to_string();
        assert!(
            e.contains("`keep-id`") && e.contains("host") && e.contains("auto"),
            "{e}"
        );
        // On the bus: a string, checked the same way; absent is host.
        let o: crate::RunOptions = serde_json::from_str(r#"{"userns":"auto"}"#).unwrap();
        assert_eq!(o.userns, UsernsMode::Auto);
        assert_eq!(
            serde_json::to_value(&o).unwrap()["userns"],
            serde_json::json!("auto")
        );
        let o: crate::RunOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o.userns, UsernsMode::Host);
        let e = serde_json::from_str::<crate::RunOptions>(r#"{"userns":"private"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use host (the default) or auto"), "{e}");
    }

    #[test]
    fn names_and_env() {
        assert!(check_name("web-1").is_ok());
        assert!(check_name("a").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_env("A=b=c").is_ok());
        assert!(check_env("=x").is_err());
        assert!(check_env("NOVALUE").is_err());
    }
}
