//! Errors as they cross the bus: `org.berth.Error.<Variant>` with a message
//! that says what failed, on what, and what to do.

/// Every error the helper can answer with.
#[derive(Debug, Clone, PartialEq, zbus::DBusError)]
#[zbus(prefix = "org.berth.Error")]
pub enum Error {
    /// A bus-level failure (helper not running, connection lost, ...).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller may not do this; the message says how to get access.
    AccessDenied(String),
    /// An argument is malformed (reference, flags, path).
    InvalidArgument(String),
    /// The image, tag, blob or registry host does not exist.
    NotFound(String),
    /// The registry could not be reached or answered with a server error.
    RegistryUnreachable(String),
    /// The registry refused the credentials (401/403).
    RegistryAuth(String),
    /// Downloaded content does not match its digest or is truncated/corrupt.
    Corrupt(String),
    /// A layer tried to write outside its directory, or broke another safety rule.
    UnsafeLayer(String),
    /// A configured limit (layer size, entry count) was passed.
    LimitExceeded(String),
    /// A manifest or media type Berth does not handle.
    Unsupported(String),
    /// The job was cancelled.
    Cancelled(String),
    /// Something else failed inside the helper; the message says what.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The D-Bus error name without the `org.berth.Error.` prefix.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ZBus(_) => "Bus",
            Error::AccessDenied(_) => "AccessDenied",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::NotFound(_) => "NotFound",
            Error::RegistryUnreachable(_) => "RegistryUnreachable",
            Error::RegistryAuth(_) => "RegistryAuth",
            Error::Corrupt(_) => "Corrupt",
            Error::UnsafeLayer(_) => "UnsafeLayer",
            Error::LimitExceeded(_) => "LimitExceeded",
            Error::Unsupported(_) => "Unsupported",
            Error::Cancelled(_) => "Cancelled",
            Error::Internal(_) => "Internal",
        }
    }

    /// The message a person reads.
    pub fn message(&self) -> String {
        match self {
            Error::ZBus(e) => describe_bus_error(e),
            Error::AccessDenied(m)
            | Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::RegistryUnreachable(m)
            | Error::RegistryAuth(m)
            | Error::Corrupt(m)
            | Error::UnsafeLayer(m)
            | Error::LimitExceeded(m)
            | Error::Unsupported(m)
            | Error::Cancelled(m)
            | Error::Internal(m) => m.clone(),
        }
    }

    /// Rebuild an error from the name and message a job's `Finished` carried.
    pub fn from_parts(name: &str, message: &str) -> Error {
        let m = message.to_string();
        match name.strip_prefix("org.berth.Error.").unwrap_or(name) {
            "AccessDenied" => Error::AccessDenied(m),
            "InvalidArgument" => Error::InvalidArgument(m),
            "NotFound" => Error::NotFound(m),
            "RegistryUnreachable" => Error::RegistryUnreachable(m),
            "RegistryAuth" => Error::RegistryAuth(m),
            "Corrupt" => Error::Corrupt(m),
            "UnsafeLayer" => Error::UnsafeLayer(m),
            "LimitExceeded" => Error::LimitExceeded(m),
            "Unsupported" => Error::Unsupported(m),
            "Cancelled" => Error::Cancelled(m),
            _ => Error::Internal(m),
        }
    }
}

/// What went wrong with the bus itself, for an [`Error::ZBus`]: each has its
/// own fix, so callers (the CLI's message, the window's banner) tell them
/// apart the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusTrouble {
    /// Nobody owns `org.berth.Helper1` on the bus: berthd is not running.
    HelperNotRunning,
    /// The bus refused the call: Berth's bus policy is missing.
    PolicyRefused,
    /// The bus itself cannot be reached (no socket, refused, handshake).
    Unreachable,
}

impl Error {
    /// Which [`BusTrouble`] this is, if any.
    pub fn bus_trouble(&self) -> Option<BusTrouble> {
        match self {
            Error::ZBus(e) => trouble_of(e),
            _ => None,
        }
    }
}

fn trouble_of(e: &zbus::Error) -> Option<BusTrouble> {
    match e {
        zbus::Error::MethodError(name, _, _) => match name.as_str() {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => Some(BusTrouble::HelperNotRunning),
            "org.freedesktop.DBus.Error.AccessDenied" => Some(BusTrouble::PolicyRefused),
            _ => None,
        },
        // zbus says Connection when the socket is not there.
        zbus::Error::InputOutput(_)
        | zbus::Error::Connection(..)
        | zbus::Error::Handshake(_)
        | zbus::Error::Address(_) => Some(BusTrouble::Unreachable),
        _ => None,
    }
}

/// Bus failures in words a person can act on.
fn describe_bus_error(e: &zbus::Error) -> String {
    let detail = match e {
        zbus::Error::MethodError(_, msg, _) => msg.clone(),
        _ => None,
    };
    match trouble_of(e) {
        Some(BusTrouble::HelperNotRunning) => format!(
            "berthd is not running on this bus ({}). Start it with \
             `systemctl start berthd` (or run `berthd` as root)",
            detail
                .as_deref()
                .unwrap_or("no owner for org.berth.Helper1")
        ),
        Some(BusTrouble::PolicyRefused) => format!(
            "the bus refused the call ({}); is the Berth bus policy \
             (org.berth.Helper1.conf) installed?",
            detail.as_deref().unwrap_or("access denied")
        ),
        Some(BusTrouble::Unreachable) => format!(
            "cannot reach the system bus ({e}); is dbus running, and is \
             DBUS_SYSTEM_BUS_ADDRESS right if set?"
        ),
        None => format!("D-Bus error: {e}"),
    }
}
