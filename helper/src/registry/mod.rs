//! The OCI distribution protocol, pull side.
//!
//! This module turns an image [`Reference`](crate::reference::Reference) into
//! verified bytes: it fetches manifests (Docker schema 2, OCI, and the lists /
//! indexes that point at one manifest per platform), picks the variant for
//! this machine, and streams configs and layers into the
//! [`ContentStore`](crate::content::ContentStore). It knows nothing about
//! what the bytes mean beyond the manifest formats; unpacking is `layers`'s
//! job and recording images is `images`'s.
//!
//! ## Why our own client
//!
//! We speak the protocol with `reqwest` instead of using `oci-client`, because
//! the pull is where Berth spends its time and we need control of it:
//!
//! - blobs stream straight into our own content store, hashed with sha256 as
//!   they arrive, never buffered whole in memory and never visible under their
//!   digest before they are verified;
//! - a dropped connection resumes with a `Range` request from the last byte
//!   written, and so does a partial blob left in the store by a crash or a
//!   `kill -9` (the store re-hashes the partial file and we ask for the rest);
//! - OCI manifests may omit `mediaType`, so we fall back to the response's
//!   `Content-Type` and then to the document's shape;
//! - one token cache is shared by every parallel layer download of a pull, so
//!   ten layers cost one token request, not ten 401 round trips.
//!
//! ## A request's life
//!
//! ```text
//!   send ──► 2xx/206/404/416 ─────────────────────────────► caller decides
//!     │ 401 + WWW-Authenticate: Bearer realm,service,scope
//!     ├──► realm allowed? (`plain_http`: no `http://` realm for an HTTPS
//!     │    registry, no login in clear) ─► else PlainHttp
//!     ├──► GET realm?service&scope (Basic auth if the requester's
//!     │    `berth login` stored credentials for the host) ─► token cached
//!     │    per (host, scope, login) until expires_in ─► send again once
//!     │    with `Bearer` ─► 401/403 = Auth
//!     │ 401 + Basic ─► send again once with credentials ────► 401/403 = Auth
//!     │ connect error, timeout, 429, 5xx
//!     └──► wait 0.2 s, 0.5 s, 1 s, 2 s… and send again, `retries` times
//! ```
//!
//! Once a host has answered with a Bearer challenge the client sends tokens
//! pre-emptively, so parallel layer downloads do not each pay for a 401.
//!
//! ## Whose login
//!
//! A [`RegistryClient`] acts for a [`Requester`]: the uid that started the
//! pull, as the bus reported it ([`RegistryClient::acting_for`]). It asks
//! the [`CredentialStore`] for that requester's login only, and a client
//! made with [`RegistryClient::new`] acts for no one (anonymous pulls).
//! Tokens are cached under the login they were fetched with (a digest of
//! it, never the password), so one user's token never serves another's
//! pull, a logout takes effect at once, and anonymous tokens are shared.
//!
//! Blob downloads follow redirects to blob storage (S3, a CDN). reqwest drops
//! the `Authorization` header when a redirect leaves the host (or port) it was
//! sent to (`reqwest::redirect::remove_sensitive_headers`), so a registry
//! token is never handed to the storage service; the `Range` header is kept,
//! which is what resuming needs. It keeps the header when only the scheme
//! changes, so a step down from HTTPS to plain HTTP is not followed unless
//! the target may be spoken to in clear (`plain_http`).
//!
//! Cancellation: every await that talks to the network races the job's
//! [`Cancel`](crate::cancel::Cancel). A cancelled blob download aborts its
//! ingest (the partial file is removed) and returns [`Error::Cancelled`]; a
//! download that fails for any other reason leaves its partial file, so the
//! next pull continues from there.

mod auth;
mod client;
mod manifest;
mod plain_http;
#[cfg(test)]
mod tests;

pub use auth::{
    parse_www_authenticate, Challenge, CredentialStore, Credentials, NoCredentials, Requester,
};
pub use client::{ClientOptions, Fetched, RegistryClient};
pub use manifest::{
    layer_compression, parse_config, parse_manifest, select_platform, select_platform_for,
    Compression, ContainerConfig, Descriptor, History, ImageConfig, ImageManifest, Index, Manifest,
    Platform, RootFs, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER_GZIP,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_LAYER_GZIP,
    MEDIA_TYPE_OCI_LAYER_ZSTD, MEDIA_TYPE_OCI_MANIFEST,
};

/// Errors of the registry client. Messages say what failed, on what, and
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tag, manifest, blob or platform variant does not exist.
    #[error("{0}")]
    NotFound(String),
    /// DNS failure, connection refused, TLS failure or timeout.
    #[error("cannot reach registry {host}: {detail}; check the name and your network")]
    Unreachable { host: String, detail: String },
    /// The connection worked but the transfer broke off and retries did not help.
    #[error("download from registry {host} failed: {detail}; run the pull again to resume it")]
    Transfer { host: String, detail: String },
    /// The registry (or its token server) refused access.
    #[error("{message}")]
    Auth {
        host: String,
        repository: String,
        status: u16,
        message: String,
    },
    /// A login or token would travel in clear: an `http://` token realm, or a
    /// redirect from HTTPS to plain HTTP (see `plain_http`).
    #[error("{message}")]
    PlainHttp { registry: String, message: String },
    /// Bytes that do not match their digest, size or format.
    #[error("{0}")]
    Corrupt(String),
    /// A valid document Berth cannot use (schema 1, foreign layers, artifacts).
    #[error("{0}")]
    Unsupported(String),
    /// A manifest or config larger than any sane one.
    #[error("{0}")]
    LimitExceeded(String),
    /// Any other unexpected answer.
    #[error("registry {host} answered HTTP {status} to {what}: {body}; try again later")]
    Server {
        host: String,
        status: u16,
        what: String,
        body: String,
    },
    #[error("the pull was cancelled")]
    Cancelled,
    #[error(transparent)]
    Content(#[from] crate::content::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether trying the same thing again later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::Transfer { .. } | Error::Server { .. }
        )
    }
}
