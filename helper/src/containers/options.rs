//! What a person asks for with `berth run`, checked before anything is made.

pub use berth_api::options::*;
pub use berth_api::{Network, RunOptions, UsernsMode, Volume};

/// Check everything that can be checked without the image.
pub fn validate(o: &RunOptions) -> Result<(), OptionError> {
    {
        let this = o;
        if let Some(n) = &this.name {
            check_name(n)?;
        }
        for e in &this.env {
            check_env(e)?;
        }
        if let Some(w) = &this.workdir {
            if !w.starts_with('/') {
                return Err(OptionError(format!(
                    "working directory `{w}` must be an absolute path"
                )));
            }
        }
        for v in &this.volumes {
            if !std::path::Path::new(&v.host).exists() {
                return Err(OptionError(format!(
                    "volume host path {} does not exist; create it first",
                    v.host
                )));
            }
        }
        Ok(())
    }
}
