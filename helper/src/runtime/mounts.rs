//! Mount options of an OCI spec (`["nosuid", "ro", "mode=755"]`) turned into
//! mount(2) flags, a propagation change and file-system data, the way
//! `mount(8)` and runc read them.

/// One spec mount's options, split the way mount(2) needs them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call itself (`MS_BIND`, `MS_RDONLY`, ...).
    pub flags: u64,
    /// A propagation change applied in a second call (`MS_PRIVATE`, ...).
    pub propagation: u64,
    /// Everything else, comma-joined, for the file system (`mode=755`).
    pub data: Vec<String>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }

    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// Flags a bind mount only gets by remounting (a bind ignores them).
    pub fn remount_flags(&self) -> u64 {
        self.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT)
    }
}

/// Parse spec mount options. Unknown options go to the file system as data;
/// `tmpcopyup` and other runtime extensions we do not implement are dropped.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let (set, clear): (u64, u64) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                out.propagation |= propagation(opt).unwrap_or(0);
                continue;
            }
            "tmpcopyup" | "idmap" | "ridmap" => continue,
            _ => {
                out.data.push(opt.clone());
                continue;
            }
        };
        out.flags = (out.flags | set) & !clear;
    }
    out
}

/// `rprivate` → `MS_PRIVATE | MS_REC`, for mount options and
/// `linux.rootfsPropagation`.
pub fn propagation(name: &str) -> Option<u64> {
    let (rec, base) = match name.strip_prefix('r') {
        Some(b @ ("private" | "shared" | "slave" | "unbindable")) => (libc::MS_REC, b),
        _ => (0, name),
    };
    let flag = match base {
        "private" => libc::MS_PRIVATE,
        "shared" => libc::MS_SHARED,
        "slave" => libc::MS_SLAVE,
        "unbindable" => libc::MS_UNBINDABLE,
        _ => return None,
    };
    Some(flag | rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> MountOptions {
        parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o = opts(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, libc::MS_PRIVATE | libc::MS_REC);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(opts(&["ro", "rw"]).flags, 0);
        assert_eq!(opts(&["rw", "ro"]).flags, libc::MS_RDONLY);
    }

    #[test]
    fn rbind_is_recursive_and_remount_flags_exclude_bind() {
        let o = opts(&["rbind", "ro", "nosuid"]);
        assert!(o.is_bind());
        assert_eq!(o.flags & libc::MS_REC, libc::MS_REC);
        assert_eq!(o.remount_flags(), libc::MS_RDONLY | libc::MS_NOSUID);
    }

    #[test]
    fn propagation_names() {
        assert_eq!(propagation("slave"), Some(libc::MS_SLAVE));
        assert_eq!(propagation("rshared"), Some(libc::MS_SHARED | libc::MS_REC));
        assert_eq!(propagation("bogus"), None);
    }
}
