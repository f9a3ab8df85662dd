//! Who may call what.
//!
//! Reading methods are open to every local user. Each mutating method names
//! a polkit action; the caller is identified by the bus (its unique name and
//! the uid the bus daemon vouches for), never by an argument. Root may do
//! everything. Others need the action granted by polkit when polkitd runs on
//! this bus; where it does not (a minimal system, a private test bus), being
//! in group `berth` grants every action, as Docker's group does.

use std::collections::HashMap;
use std::ffi::{CStr, CString};

use berth_api::{Error, FLAGS_KNOWN, FLAG_NO_INTERACTION};
use zbus::message::Header;
use zbus::zvariant::Value;

/// The group whose members may manage Berth where polkit is not running,
/// unless the config names another (`[access] group`).
pub const DEFAULT_GROUP: &str = "berth";

/// Polkit actions, one per kind of change (see org.berth.policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ImagePull,
    ImageRemove,
    ImageExport,
    RegistryLogin,
    ContainerManage,
    /// Catalogs and apps: add or remove a catalog, install, start, stop,
    /// update and uninstall apps, delete the data uninstalls kept (`berth
    /// volume rm`, `prune`), audit and repair (`berth doctor`).
    AppManage,
}

impl Action {
    pub fn id(self) -> &'static str {
        match self {
            Action::ImagePull => "org.berth.image-pull",
            Action::ImageRemove => "org.berth.image-remove",
            Action::ImageExport => "org.berth.image-export",
            Action::RegistryLogin => "org.berth.registry-login",
            Action::ContainerManage => "org.berth.container-manage",
            Action::AppManage => "org.berth.app-manage",
        }
    }
}

/// The identity of a caller, as the bus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Reject flag bits this version does not know.
pub fn check_flags(flags: u64) -> Result<(), Error> {
    if flags & !FLAGS_KNOWN != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown flags {:#x}; this berthd understands {:#x}",
            flags & !FLAGS_KNOWN,
            FLAGS_KNOWN
        )));
    }
    Ok(())
}

/// Who sent the message with `header`.
pub async fn caller(conn: &zbus::Connection, header: &Header<'_>) -> Result<Caller, Error> {
    let sender = header
        .sender()
        .ok_or_else(|| Error::AccessDenied("the call has no sender on the bus".into()))?;
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let uid = dbus
        .get_connection_unix_user(sender.clone().into())
        .await
        .map_err(|e| Error::AccessDenied(format!("cannot tell who is calling: {e}")))?;
    Ok(Caller { uid })
}

/// Decides who may change things.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// Members may do everything where polkit does not run.
    pub group: String,
}

impl Authorizer {
    /// Check that the caller may perform `action`; returns the caller.
    pub async fn authorize(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        action: Action,
        flags: u64,
    ) -> Result<Caller, Error> {
        authorize(conn, header, action, flags, &self.group).await
    }
}

async fn authorize(
    conn: &zbus::Connection,
    header: &Header<'_>,
    action: Action,
    flags: u64,
    group: &str,
) -> Result<Caller, Error> {
    check_flags(flags)?;
    let who = caller(conn, header).await?;
    if who.is_root() {
        return Ok(who);
    }
    let sender = header.sender().expect("checked in caller()").to_string();
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let polkit_running = dbus
        .name_has_owner("org.freedesktop.PolicyKit1".try_into().expect("valid name"))
        .await
        .unwrap_or(false);
    if polkit_running {
        let interactive = flags & FLAG_NO_INTERACTION == 0;
        match polkit_check(conn, &sender, action, interactive).await {
            Ok(true) => return Ok(who),
            Ok(false) => {
                return Err(Error::AccessDenied(format!(
                    "user {} is not allowed to {} ({}): polkit refused; ask an administrator \
                     to grant that action, or to add you to group `{group}`",
                    user_name(who.uid),
                    describe(action),
                    action.id()
                )))
            }
            Err(e) => tracing::warn!("polkit check failed, falling back to group {group}: {e}"),
        }
    }
    if in_group(who.uid, group) {
        return Ok(who);
    }
    Err(Error::AccessDenied(format!(
        "user {} may not {}: only root and members of group `{group}` may (run as root, or \
         `sudo usermod -aG {group} {}` and log in again)",
        user_name(who.uid),
        describe(action),
        user_name(who.uid)
    )))
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::ImagePull => "pull images",
        Action::ImageRemove => "remove images",
        Action::ImageExport => "export images",
        Action::RegistryLogin => "change registry logins",
        Action::ContainerManage => "manage containers",
        Action::AppManage => "manage apps",
    }
}

/// Ask polkit, with the subject built from the caller's bus name.
async fn polkit_check(
    conn: &zbus::Connection,
    sender: &str,
    action: Action,
    interactive: bool,
) -> zbus::Result<bool> {
    let mut subject_details: HashMap<&str, Value<'_>> = HashMap::new();
    subject_details.insert("name", Value::from(sender));
    let subject = ("system-bus-name", subject_details);
    let details: HashMap<&str, &str> = HashMap::new();
    let reply = conn
        .call_method(
            Some("org.freedesktop.PolicyKit1"),
            "/org/freedesktop/PolicyKit1/Authority",
            Some("org.freedesktop.PolicyKit1.Authority"),
            "CheckAuthorization",
            &(subject, action.id(), details, u32::from(interactive), ""),
        )
        .await?;
    let (authorized, _challenge, _details): (bool, bool, HashMap<String, String>) =
        reply.body().deserialize()?;
    Ok(authorized)
}

/// The user's name, or the uid as text.
pub fn user_name(uid: u32) -> String {
    passwd(uid)
        .map(|(n, _)| n)
        .unwrap_or_else(|| uid.to_string())
}

/// (name, primary gid) of `uid` from the host's user database.
fn passwd(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `out` is set to `&pwd` or null.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Some((name, pwd.pw_gid))
}

/// Is `uid` a member (primary or supplementary) of group `group`?
pub fn in_group(uid: u32, group: &str) -> bool {
    let Some((name, primary)) = passwd(uid) else {
        return false;
    };
    let Ok(cname) = CString::new(name) else {
        return false;
    };
    let Ok(cgroup) = CString::new(group) else {
        return false;
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as above.
    let rc = unsafe {
        libc::getgrnam_r(
            cgroup.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        return false;
    }
    let gid = grp.gr_gid;
    if gid == primary {
        return true;
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: `groups` has room for `n` entries; getgrouplist updates `n`.
    let rc = unsafe { libc::getgrouplist(cname.as_ptr(), primary, groups.as_mut_ptr(), &mut n) };
    if rc < 0 {
        return false;
    }
    groups[..n.max(0) as usize].contains(&gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_flags_are_rejected() {
        assert!(check_flags(0).is_ok());
        assert!(check_flags(FLAG_NO_INTERACTION).is_ok());
        let e = check_flags(1 << 40).unwrap_err();
        assert!(e.message().contains("unknown flags"), "{e}");
    }

    #[test]
    fn root_is_root() {
        assert_eq!(user_name(0), "root");
        assert!(!in_group(0, "no-such-group-berth-test"));
    }
}
