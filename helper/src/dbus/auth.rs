//! Who may call what.
//!
//! The caller is identified by the bus (its unique name and the uid the bus
//! daemon vouches for), never by an argument. Root may do everything. For
//! everyone else one *authority* decides, chosen once when berthd starts
//! ([`Authorizer::decide`]), never per call:
//!
//! * **polkit**, where polkitd runs on the bus or can be started by it (any
//!   desktop): each change names a polkit action (`org.berth.*`, see
//!   `org.berth.policy`), and the subject is the caller's bus name, so a
//!   password prompt goes to the caller's session. Any error while asking
//!   polkit (polkitd gone, a caller that left before polkit looked it up, a
//!   timeout) is a refusal: nothing falls back to group membership. A
//!   caller able to make polkit fail would otherwise choose the weaker rule
//!   (the race of the security review's §1.4).
//! * **group**, where no polkit exists (a minimal system, a container host,
//!   the private test bus): members of group `berth` (`[access] group`) may
//!   do everything, as Docker's `docker` group may. That equals root, and
//!   every refusal says so.
//!
//! `[access] authority = "polkit" | "group"` in the config overrides the
//! choice; `"auto"` (the default) decides as above.
//!
//! Reads are open to every local user, but what a read returns depends on
//! who asks: [`Authorizer::holds`] asks the same authority, without any
//! prompt, whether the caller holds an action already, so a read can show
//! secrets (environment values, command lines) to those who could change
//! the thing anyway.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::time::Duration;

use berth_api::{Error, FLAGS_KNOWN, FLAG_NO_INTERACTION};
use zbus::message::Header;
use zbus::zvariant::Value;

use crate::config;

/// The group whose members may manage Berth where polkit does not run,
/// unless the config names another (`[access] group`).
pub const DEFAULT_GROUP: &str = "berth";

/// polkit's well-known name.
const POLKIT: &str = "org.freedesktop.PolicyKit1";

/// How long an answer from polkit may take with a prompt (someone typing a
/// password) and without one.
const POLKIT_INTERACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const POLKIT_TIMEOUT: Duration = Duration::from_secs(25);

/// Polkit actions, one per kind of change (see org.berth.policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ImagePull,
    ImageRemove,
    ImageExport,
    RegistryLogin,
    /// Run, stop, remove and exec into containers. Equals root: `-v /:/host`,
    /// `--network host` and `exec` as root are part of it. `auth_admin`,
    /// never kept.
    ContainerManage,
    /// Read a container's or an app's logs (without being its owner). Active
    /// local sessions get it without a password, so the window can show an
    /// app's log without holding a root-equivalent right.
    LogsRead,
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
            Action::LogsRead => "org.berth.logs-read",
            Action::AppManage => "org.berth.app-manage",
        }
    }

    /// What it allows, for messages ("… may not manage containers").
    fn describe(self) -> &'static str {
        match self {
            Action::ImagePull => "pull images",
            Action::ImageRemove => "remove images",
            Action::ImageExport => "export images",
            Action::RegistryLogin => "change registry logins",
            Action::ContainerManage => "manage containers",
            Action::LogsRead => "read logs",
            Action::AppManage => "manage apps",
        }
    }

    /// Whether holding it is as good as being root (said in refusals).
    fn equals_root(self) -> bool {
        self == Action::ContainerManage
    }
}

/// What a request is about, handed to polkit as details: the keys show up
/// in rules (`action.lookup("app")`) and `$(key)` in the prompt's message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pairs: Vec<(&'static str, String)>,
    /// The prompt, with `$(key)` for the values above.
    message: Option<&'static str>,
}

impl Details {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `key` = `value` (values come from validated names only).
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.pairs.push((key, value.into()));
        self
    }

    /// The prompt polkit shows instead of the action's generic one.
    pub fn message(mut self, message: &'static str) -> Self {
        self.message = Some(message);
        self
    }

    fn to_polkit(&self) -> HashMap<&str, &str> {
        let mut d: HashMap<&str, &str> = self.pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(m) = self.message {
            // polkit honours these only from a uid-0 mechanism, as berthd is.
            d.insert("polkit.message", m);
        }
        d
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

/// Which authority decides for callers other than root (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    Polkit,
    /// Members of this group may do everything.
    Group(String),
}

/// Decides who may change things.
#[derive(Debug, Clone)]
pub struct Authorizer {
    authority: Authority,
}

impl Authorizer {
    /// An authorizer with a fixed authority (tests, and [`Authorizer::decide`]).
    pub fn new(authority: Authority) -> Self {
        Authorizer { authority }
    }

    /// Choose the authority once, at start: what `[access] authority`
    /// says, or with `auto` polkit if its name is owned or activatable on
    /// `conn`'s bus, else group `[access] group`.
    pub async fn decide(conn: &zbus::Connection, access: &config::Access) -> Result<Self, String> {
        let group = Authority::Group(access.group.clone());
        let authority = match access.authority {
            config::AuthorityChoice::Polkit => Authority::Polkit,
            config::AuthorityChoice::Group => group,
            config::AuthorityChoice::Auto => {
                if polkit_available(conn).await? {
                    Authority::Polkit
                } else {
                    group
                }
            }
        };
        Ok(Authorizer { authority })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Check that the caller may perform `action`; returns the caller.
    pub async fn authorize(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        action: Action,
        flags: u64,
    ) -> Result<Caller, Error> {
        self.authorize_with(conn, header, action, &Details::new(), flags)
            .await
    }

    /// [`Authorizer::authorize`] with `details` for polkit's rules and prompt.
    pub async fn authorize_with(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        action: Action,
        details: &Details,
        flags: u64,
    ) -> Result<Caller, Error> {
        check_flags(flags)?;
        let who = caller(conn, header).await?;
        if who.is_root() {
            return Ok(who);
        }
        let interactive = flags & FLAG_NO_INTERACTION == 0;
        match self
            .decide_for(conn, header, who, action, details, interactive)
            .await
        {
            Ok(true) => Ok(who),
            Ok(false) => Err(self.refusal(who, action)),
            Err(e) => Err(Error::AccessDenied(format!(
                "could not ask polkit whether user {} may {} ({}): {e}; nothing was done \
                 (while polkit governs this computer, Berth never falls back to group \
                 membership); try again, or ask an administrator to check polkitd",
                user_name(who.uid),
                action.describe(),
                action.id()
            ))),
        }
    }

    /// Whether `who`, who sent `header`, holds `action` now without being
    /// asked anything: root, a member of the group (group authority), or
    /// polkit says yes without a prompt. Any error is a no.
    pub async fn holds(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        who: Caller,
        action: Action,
    ) -> bool {
        if who.is_root() {
            return true;
        }
        matches!(
            self.decide_for(conn, header, who, action, &Details::new(), false)
                .await,
            Ok(true)
        )
    }

    /// The authority's answer for a caller who is not root.
    async fn decide_for(
        &self,
        conn: &zbus::Connection,
        header: &Header<'_>,
        who: Caller,
        action: Action,
        details: &Details,
        interactive: bool,
    ) -> zbus::Result<bool> {
        match &self.authority {
            Authority::Group(group) => Ok(in_group(who.uid, group)),
            Authority::Polkit => {
                let sender = header
                    .sender()
                    .ok_or_else(|| zbus::Error::Failure("the call has no sender".into()))?
                    .to_string();
                polkit_check(conn, &sender, action, details, interactive).await
            }
        }
    }

    fn refusal(&self, who: Caller, action: Action) -> Error {
        let name = user_name(who.uid);
        let root = if action.equals_root() {
            " It equals root on this computer (containers with any host directory, the \
             host's network, commands as root in any container), so grant it only to \
             administrators."
        } else {
            ""
        };
        Error::AccessDenied(match &self.authority {
            Authority::Polkit => format!(
                "user {name} is not allowed to {} ({}): polkit refused.{root} An administrator \
                 can grant the action with a polkit rule.",
                action.describe(),
                action.id()
            ),
            Authority::Group(group) => format!(
                "user {name} may not {}: on this computer (no polkit) only root and members of \
                 group `{group}` may. Membership in `{group}` equals root on this computer \
                 (it can run containers with any host directory); an administrator who means \
                 to give you that adds you with `usermod -aG {group} {name}`, and you log in \
                 again.",
                action.describe()
            ),
        })
    }
}

/// Whether polkitd runs on `conn`'s bus or the bus can start it.
async fn polkit_available(conn: &zbus::Connection) -> Result<bool, String> {
    let dbus = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| format!("asking the bus about polkit: {e}"))?;
    let name = POLKIT.try_into().expect("valid name");
    if dbus
        .name_has_owner(name)
        .await
        .map_err(|e| format!("asking the bus about polkit: {e}"))?
    {
        return Ok(true);
    }
    let activatable = dbus
        .list_activatable_names()
        .await
        .map_err(|e| format!("asking the bus about polkit: {e}"))?;
    Ok(activatable.iter().any(|n| n.as_str() == POLKIT))
}

/// Ask polkit, with the subject built from the caller's bus name.
async fn polkit_check(
    conn: &zbus::Connection,
    sender: &str,
    action: Action,
    details: &Details,
    interactive: bool,
) -> zbus::Result<bool> {
    let mut subject_details: HashMap<&str, Value<'_>> = HashMap::new();
    subject_details.insert("name", Value::from(sender));
    let subject = ("system-bus-name", subject_details);
    let body = (
        subject,
        action.id(),
        details.to_polkit(),
        u32::from(interactive),
        "",
    );
    let call = conn.call_method(
        Some(POLKIT),
        "/org/freedesktop/PolicyKit1/Authority",
        Some("org.freedesktop.PolicyKit1.Authority"),
        "CheckAuthorization",
        &body,
    );
    let limit = if interactive {
        POLKIT_INTERACTIVE_TIMEOUT
    } else {
        POLKIT_TIMEOUT
    };
    let reply = tokio::time::timeout(limit, call)
        .await
        .map_err(|_| zbus::Error::Failure(format!("polkit did not answer within {limit:?}")))??;
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

    /// The policy berthd ships declares every action it asks for, and the
    /// one that equals root is never kept (auth_admin_keep would let the
    /// process that got it, such as the window, keep it for minutes).
    #[test]
    fn the_policy_file_declares_every_action_and_keeps_no_root() {
        let policy = include_str!("../../data/org.berth.policy");
        let action = |id: &str| -> &str {
            let start = policy
                .find(&format!("<action id=\"{id}\">"))
                .unwrap_or_else(|| panic!("{id} is not in org.berth.policy"));
            let len = policy[start..].find("</action>").expect("closed");
            &policy[start..start + len]
        };
        let all = [
            Action::ImagePull,
            Action::ImageRemove,
            Action::ImageExport,
            Action::RegistryLogin,
            Action::ContainerManage,
            Action::LogsRead,
            Action::AppManage,
        ];
        for a in all {
            let text = action(a.id());
            if a.equals_root() {
                assert!(
                    !text.contains("_keep")
                        && text.contains("<allow_active>auth_admin</allow_active>"),
                    "{}: {text}",
                    a.id()
                );
            }
        }
        assert!(action("org.berth.logs-read").contains("<allow_active>yes</allow_active>"));
        assert!(action("org.berth.logs-read").contains("<allow_any>auth_admin</allow_any>"));
    }

    #[test]
    fn details_carry_the_prompt_for_polkit() {
        let d = Details::new()
            .with("app", "hello")
            .message("Authentication is required to install $(app)");
        let p = d.to_polkit();
        assert_eq!(p.get("app"), Some(&"hello"));
        assert_eq!(
            p.get("polkit.message"),
            Some(&"Authentication is required to install $(app)")
        );
        assert!(Details::new().to_polkit().is_empty());
    }

    #[test]
    fn root_is_root() {
        assert_eq!(user_name(0), "root");
        assert!(!in_group(0, "no-such-group-berth-test"));
    }
}
