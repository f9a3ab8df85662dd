//! Fixtures shared by every test of one test binary.
//!
//! Starting a registry and pushing the catalog takes a moment; tests that
//! only read from it can share one. Statics never drop, so the fixture is
//! shut down by an `atexit` handler when the test process exits (normally or
//! through `process::exit` after failures); if the process is killed, the
//! parent-death signal still takes the registry down, and only its temp dir
//! is left behind.

use crate::image::{push_test_images, TestImages};
use crate::registry::Registry;
use std::sync::OnceLock;

/// An anonymous registry with the standard catalog pushed.
#[derive(Debug)]
pub struct SharedImages {
    pub registry: Registry,
    pub images: TestImages,
}

static IMAGES: OnceLock<Result<SharedImages, String>> = OnceLock::new();

extern "C" fn shutdown_shared() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(shared)) = IMAGES.get() {
            shared.registry.shutdown();
        }
    });
}

/// The shared registry and catalog, started on first use. Panics (in every
/// test that asks) if it could not be started.
pub fn images() -> &'static SharedImages {
    let result = IMAGES.get_or_init(|| {
        let started = (|| {
            let registry = Registry::start()?;
            let images = push_test_images(&registry)?;
            anyhow::Ok(SharedImages { registry, images })
        })();
        match started {
            Ok(shared) => {
                // SAFETY: registering a plain extern "C" fn with no captures.
                unsafe {
                    libc::atexit(shutdown_shared);
                }
                Ok(shared)
            }
            Err(err) => Err(format!("{err:#}")),
        }
    });
    match result {
        Ok(shared) => shared,
        Err(err) => panic!("starting the shared test registry: {err}"),
    }
}
