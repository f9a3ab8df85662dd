//! Fixtures shared by every test of one test binary.
//!
//! Starting a registry and pushing images takes a moment; tests that only
//! read from it can share one. Statics never drop, so each fixture is shut
//! down by an `atexit` handler when the test process exits (normally or
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
static DEMO: OnceLock<Result<Registry, String>> = OnceLock::new();

extern "C" fn shutdown_shared() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(shared)) = IMAGES.get() {
            shared.registry.shutdown();
        }
    });
}

extern "C" fn shutdown_demo() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(registry)) = DEMO.get() {
            registry.shutdown();
        }
    });
}

/// The shared registry and catalog, started on first use. Panics (in every
/// test that asks) if it could not be started.
pub fn images() -> &'static SharedImages {
    shared(&IMAGES, "the shared test registry", shutdown_shared, || {
        let registry = Registry::start()?;
        let images = push_test_images(&registry)?;
        Ok(SharedImages { registry, images })
    })
}

/// A registry with the demo images ([`crate::demo::registry`]), started on
/// first use. Panics (in every test that asks) if it could not be started.
pub fn demo_registry() -> &'static Registry {
    shared(
        &DEMO,
        "the demo registry",
        shutdown_demo,
        crate::demo::registry,
    )
}

/// What `cell` holds, started by `start` on first use with `shutdown`
/// registered to run at exit.
fn shared<T>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &str,
    shutdown: extern "C" fn(),
    start: impl FnOnce() -> anyhow::Result<T>,
) -> &'static T {
    let result = cell.get_or_init(|| match start() {
        Ok(fixture) => {
            // SAFETY: registering a plain extern "C" fn with no captures.
            unsafe {
                libc::atexit(shutdown);
            }
            Ok(fixture)
        }
        Err(err) => Err(format!("{err:#}")),
    });
    match result {
        Ok(fixture) => fixture,
        Err(err) => panic!("starting {what}: {err}"),
    }
}
