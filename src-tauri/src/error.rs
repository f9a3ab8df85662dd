//! Errors as the page sees them: a `kind` it can branch on, a `message`
//! that says what failed, and a `fix` that says what to do about it.
//!
//! Every command returns [`UiError`] on failure. The kinds the page treats
//! specially are the ones about the helper itself (`no_bus`, `not_running`,
//! `not_authorized`): the window shows a banner with the fix and keeps
//! checking until the cause goes away.

use berth_api::{BusTrouble, Error};
use serde::Serialize;
use ts_rs::TS;

/// One failure, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct UiError {
    /// `no_bus`, `not_running`, `not_authorized`, `registry`, `not_found`,
    /// `invalid`, `cancelled`, `failed`.
    pub kind: String,
    pub message: String,
    /// What the user can do; empty when the message already says it.
    pub fix: String,
}

impl UiError {
    pub fn new(kind: &str, message: impl Into<String>, fix: impl Into<String>) -> UiError {
        UiError {
            kind: kind.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> UiError {
        UiError::new("invalid", message, "")
    }

    /// True when the cause is the bus or berthd, not the request: the
    /// connection is worth making again.
    pub fn is_helper_down(&self) -> bool {
        matches!(self.kind.as_str(), "no_bus" | "not_running")
    }
}

pub type Result<T> = std::result::Result<T, UiError>;

/// How to get a right berthd refused. Membership in group `berth` lets
/// its members do what root can (a container may mount any host folder),
/// and the text says so (issue 11); the window itself never runs as root.
const NOT_AUTHORIZED: &str = "Ask an administrator to approve it when Berth asks for their \
     password, or to add you to the `berth` group. Members of `berth` can do anything root \
     can do on this computer, so the group is only for people trusted with root.";

/// How to start berthd, in the words of the README.
const START_BERTHD: &str = "Start Berth's helper: `sudo systemctl start berthd`, or run \
     `sudo ./scripts/run.sh` from Berth's source folder.";

impl From<Error> for UiError {
    fn from(e: Error) -> UiError {
        let message = e.message();
        match &e {
            Error::ZBus(_) => from_bus(&e, message),
            Error::AccessDenied(_) => UiError::new("not_authorized", message, NOT_AUTHORIZED),
            Error::RegistryUnreachable(_) | Error::RegistryAuth(_) => UiError::new(
                "registry",
                message,
                "Check the network connection, or use the demo catalog that works offline \
                 (`sudo ./scripts/run.sh` sets it up when the public registry is out of reach).",
            ),
            Error::NotFound(_) => UiError::new("not_found", message, ""),
            Error::InvalidArgument(_) => UiError::new("invalid", message, ""),
            Error::Cancelled(_) => UiError::new("cancelled", message, ""),
            _ => UiError::new("failed", message, ""),
        }
    }
}

impl From<zbus::Error> for UiError {
    fn from(e: zbus::Error) -> UiError {
        UiError::from(Error::ZBus(e))
    }
}

fn from_bus(e: &Error, message: String) -> UiError {
    match e.bus_trouble() {
        Some(BusTrouble::HelperNotRunning) => UiError::new(
            "not_running",
            "Berth's helper (berthd) is not running.",
            START_BERTHD,
        ),
        Some(BusTrouble::PolicyRefused) => UiError::new(
            "not_authorized",
            message,
            "Install Berth's bus policy: copy `helper/data/org.berth.Helper1.conf` to \
             `/etc/dbus-1/system.d/`.",
        ),
        Some(BusTrouble::Unreachable) => UiError::new(
            "no_bus",
            format!("Berth cannot reach the system message bus: {message}"),
            "Make sure D-Bus runs (`sudo systemctl start dbus`), and that \
             DBUS_SYSTEM_BUS_ADDRESS, if set, names the bus berthd uses.",
        ),
        None => UiError::new("failed", message, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_helper_says_how_to_start_it() {
        let e: UiError = Error::ZBus(zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from("org.freedesktop.DBus.Error.ServiceUnknown")
                .unwrap(),
            Some("The name is not activatable".into()),
            zbus::message::Message::method_call("/", "Ping")
                .unwrap()
                .build(&())
                .unwrap(),
        ))
        .into();
        assert_eq!(e.kind, "not_running");
        assert!(e.fix.contains("systemctl start berthd"), "{}", e.fix);
        assert!(e.is_helper_down());
    }

    #[test]
    fn refusals_and_registries_get_their_own_kind() {
        let e: UiError = Error::AccessDenied("not allowed".into()).into();
        assert_eq!(e.kind, "not_authorized");
        assert!(e.fix.contains("`berth` group"), "{}", e.fix);
        // The group is root's equal, and the window never runs as root.
        assert!(e.fix.contains("anything root can do"), "{}", e.fix);
        assert!(!e.fix.contains("as root"), "{}", e.fix);
        let e: UiError =
            Error::RegistryUnreachable("registry-1.docker.io: timed out".into()).into();
        assert_eq!(e.kind, "registry");
        assert_eq!(e.message, "registry-1.docker.io: timed out");
        assert!(!e.is_helper_down());
    }

    #[test]
    fn a_closed_socket_is_no_bus() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e: UiError = zbus::Error::InputOutput(std::sync::Arc::new(io)).into();
        assert_eq!(e.kind, "no_bus");
        assert!(e.is_helper_down());
        // What zbus answers when the bus's socket is not there.
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let address: zbus::Address = "unix:path=/nonexistent/bus".parse().unwrap();
        let e: UiError = zbus::Error::Connection(std::sync::Arc::new(io), address).into();
        assert_eq!(e.kind, "no_bus");
        assert!(e.is_helper_down());
    }
}
