//! `USER[:GROUP]` resolved from the image's own /etc/passwd and /etc/group.
//!
//! Names are looked up by reading the image's files, never through NSS
//! (the host's users mean nothing inside an image, and NSS modules must not
//! run on image data). The files are opened beneath the rootfs with
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): an image whose
//! /etc/passwd is a symlink to `/../../etc/shadow` reads its own
//! `/etc/shadow`, never the host's.
//!
//! Docker's (runc's `GetExecUser`) semantics:
//! - `""` is root: uid 0, gid 0;
//! - the user part is a name (must be in passwd) or a uid (need not be;
//!   without an entry the gid is 0);
//! - the group part, if any, is a name (must be in group) or a gid, and
//!   replaces the passwd gid;
//! - without a group part, a user found in passwd also gets, as
//!   supplementary groups, every group that lists it as a member.

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Docker's words, so scripts that match on them keep working.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("invalid user {0:?}: uids and gids must be in range 0-2147483647")]
    OutOfRange(String),
    #[error("invalid user {0:?}: use USER, UID, USER:GROUP or UID:GID")]
    BadSpec(String),
    #[error("cannot read {file} in the image: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// This module's result.
pub type Result<T> = std::result::Result<T, Error>;

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The passwd entry's home directory, when there is an entry.
    pub home: Option<String>,
}

/// One line of /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Larger passwd/group files are refused rather than read into memory.
const MAX_FILE: u64 = 16 << 20;

/// Resolves `user` (Docker's `--user`/`USER` syntax) against the image at
/// `rootfs`.
pub fn resolve(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    if user.is_empty() {
        return resolve_with(None, None, user);
    }
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let group = read_in_root(rootfs, "etc/group")?;
    resolve_with(passwd.as_deref(), group.as_deref(), user)
}

/// `rootfs/relative`, opened without leaving `rootfs` (symlinks resolve
/// as if rootfs were /). `None` when the file does not exist.
fn read_in_root(rootfs: &Path, relative: &str) -> Result<Option<String>> {
    let err = |source: std::io::Error| Error::Read {
        file: format!("/{relative}"),
        source,
    };
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let fd = match rustix::fs::openat2(
        &root,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).map_err(err)?;
    Ok(Some(text))
}

/// Parses /etc/passwd; comments, NIS (`+`/`-`) and malformed lines are
/// skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_string(),
                uid: fields[2].trim().parse().ok()?,
                gid: fields[3].trim().parse().ok()?,
                home: fields.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// Parses /etc/group, skipping what `parse_passwd` skips.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(['#', '+', '-']))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: fields[0].to_string(),
                gid: fields[2].trim().parse().ok()?,
                members: fields
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// A uid or gid, if `s` is numeric; out of range is an error.
fn numeric(s: &str, spec: &str) -> Result<Option<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(id) if id <= i32::MAX as u32 => Ok(Some(id)),
        _ => Err(Error::OutOfRange(spec.to_string())),
    }
}

/// Docker's resolution of `spec` against file contents (`None`: the image
/// has no such file).
pub fn resolve_with(passwd: Option<&str>, group: Option<&str>, spec: &str) -> Result<ResolvedUser> {
    let mut resolved = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: None,
    };
    if spec.is_empty() {
        return Ok(resolved);
    }
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(Error::BadSpec(spec.to_string()));
    }

    let users = passwd.map(parse_passwd).unwrap_or_default();
    let uid = numeric(user_part, spec)?;
    let entry = match uid {
        Some(uid) => users.into_iter().find(|u| u.uid == uid),
        None => Some(
            users
                .into_iter()
                .find(|u| u.name == user_part)
                .ok_or_else(|| Error::UnknownUser(user_part.to_string()))?,
        ),
    };
    match (&entry, uid) {
        (Some(e), _) => {
            resolved.uid = e.uid;
            resolved.gid = e.gid;
            resolved.home = Some(e.home.clone());
        }
        (None, Some(uid)) => resolved.uid = uid,
        (None, None) => unreachable!("a name without an entry returned above"),
    }

    let groups = group.map(parse_group).unwrap_or_default();
    match group_part {
        Some(g) => {
            resolved.gid = match numeric(g, spec)? {
                Some(gid) => gid,
                None => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| Error::UnknownGroup(g.to_string()))?,
            };
        }
        None => {
            if let Some(e) = &entry {
                let mut gids: Vec<u32> = groups
                    .iter()
                    .filter(|g| g.members.contains(&e.name))
                    .map(|g| g.gid)
                    .collect();
                gids.dedup();
                resolved.additional_gids = gids;
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nginx:x:101:101:nginx user:/var/cache/nginx:/sbin/nologin
broken line
+nis
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
www-data:x:33:nginx
nginx:x:101:
audio:x:29:pulse, nginx
nogroup:x:65534:
";

    fn r(spec: &str) -> Result<ResolvedUser> {
        resolve_with(Some(PASSWD), Some(GROUP), spec)
    }

    #[test]
    fn empty_is_root() {
        assert_eq!(
            r("").unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: None
            }
        );
    }

    #[test]
    fn name_gets_passwd_gid_home_and_member_groups() {
        let u = r("nginx").unwrap();
        assert_eq!((u.uid, u.gid), (101, 101));
        assert_eq!(u.additional_gids, vec![33, 29]);
        assert_eq!(u.home.as_deref(), Some("/var/cache/nginx"));
    }

    #[test]
    fn uid_with_entry_is_that_user() {
        let u = r("101").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (101, 101, vec![33, 29])
        );
    }

    #[test]
    fn uid_without_entry_gets_gid_0() {
        let u = r("1234").unwrap();
        assert_eq!((u.uid, u.gid, u.home.clone()), (1234, 0, None));
        assert!(u.additional_gids.is_empty());
        let u = resolve_with(None, None, "1234:5678").unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5678));
    }

    #[test]
    fn explicit_group_replaces_gid_and_drops_supplementary() {
        let u = r("nginx:audio").unwrap();
        assert_eq!((u.uid, u.gid), (101, 29));
        assert!(u.additional_gids.is_empty());
        assert_eq!(r("nginx:4000").unwrap().gid, 4000);
        assert_eq!(r("1234:www-data").unwrap().gid, 33);
        assert_eq!(r("daemon:nogroup").unwrap().gid, 65534);
    }

    #[test]
    fn errors_use_dockers_words() {
        assert_eq!(
            r("postgres").unwrap_err().to_string(),
            "unable to find user postgres: no matching entries in passwd file"
        );
        assert_eq!(
            r("nginx:wheel").unwrap_err().to_string(),
            "unable to find group wheel: no matching entries in group file"
        );
        assert!(matches!(
            resolve_with(None, None, "nginx"),
            Err(Error::UnknownUser(_))
        ));
        assert!(matches!(r("4294967296"), Err(Error::OutOfRange(_))));
        assert!(matches!(r("2147483648"), Err(Error::OutOfRange(_))));
        assert!(matches!(r(":0"), Err(Error::BadSpec(_))));
        assert!(matches!(r("nginx:"), Err(Error::BadSpec(_))));
        assert!(matches!(r("a:b:c"), Err(Error::BadSpec(_))));
    }

    #[test]
    fn parsing_skips_junk() {
        let users = parse_passwd(PASSWD);
        assert_eq!(users.len(), 4);
        assert_eq!(users[3].name, "nobody");
        let groups = parse_group(GROUP);
        assert_eq!(groups[4].members, vec!["pulse", "nginx"]);
    }

    #[test]
    fn reads_files_beneath_the_rootfs_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/group"), "staff:x:50:app\n").unwrap();
        // A hostile image: passwd is an absolute symlink climbing out; inside
        // the root it lands on the image's own file.
        std::fs::create_dir_all(root.join("host")).unwrap();
        std::fs::write(
            root.join("host/passwd"),
            "app:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("outside"), "app:x:0:0::/root:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/../../../host/passwd", root.join("etc/passwd")).unwrap();
        let u = resolve(&root, "app").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![50])
        );

        // A relative symlink aimed at the file beside the rootfs stays in too.
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("etc/passwd")).unwrap();
        assert!(matches!(resolve(&root, "app"), Err(Error::UnknownUser(_))));
        // …and numeric users still work without a passwd file.
        assert_eq!(resolve(&root, "7").unwrap().uid, 7);
        assert_eq!(resolve(&root, "").unwrap().uid, 0);
    }
}
