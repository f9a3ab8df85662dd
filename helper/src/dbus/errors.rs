//! Library errors into bus errors: the name says what kind, the message what
//! happened and what to do.

use berth_api::Error;

use crate::images::Error as E;
use crate::layers::Error as L;
use crate::registry::Error as R;

pub fn to_api(e: E) -> Error {
    let msg = e.to_string();
    match e {
        E::Reference(_) => Error::InvalidArgument(msg),
        E::NotFound(_) => Error::NotFound(msg),
        E::Ambiguous(_) => Error::InvalidArgument(msg),
        E::Registry(r) => registry(r, msg),
        E::Content(crate::content::Error::NotFound(_)) => Error::NotFound(msg),
        E::Content(crate::content::Error::Io { .. }) => Error::Internal(msg),
        E::Content(_) => Error::Corrupt(msg),
        E::Layer(l) => match l {
            L::Unsafe { .. } => Error::UnsafeLayer(msg),
            // Decompression bombs and a full disk: limits of the config.
            L::LimitExceeded { .. } | L::Bomb { .. } | L::NoSpace { .. } => {
                Error::LimitExceeded(msg)
            }
            L::Corrupt(_) => Error::Corrupt(msg),
            L::Cancelled => Error::Cancelled("cancelled; nothing was left half-written".into()),
            _ => Error::Internal(msg),
        },
        E::State(_) | E::Io { .. } => Error::Internal(msg),
        E::Corrupt(_) => Error::Corrupt(msg),
        E::Unsupported(_) => Error::Unsupported(msg),
        E::Cancelled => Error::Cancelled("cancelled; nothing was left half-written".into()),
    }
}

fn registry(r: R, msg: String) -> Error {
    match r {
        R::NotFound { .. } => Error::NotFound(msg),
        R::Unreachable { .. } | R::Server { .. } => Error::RegistryUnreachable(msg),
        R::Auth { .. } | R::PlainHttp { .. } => Error::RegistryAuth(msg),
        R::Corrupt(_) => Error::Corrupt(msg),
        R::Unsupported(_) => Error::Unsupported(msg),
        R::LimitExceeded(_) => Error::LimitExceeded(msg),
        R::Cancelled => Error::Cancelled("cancelled; nothing was left half-written".into()),
        R::Content(crate::content::Error::Io { .. }) => Error::Internal(msg),
        R::Content(_) => Error::Corrupt(msg),
        _ => Error::Internal(msg),
    }
}
