//! Recode of a received or dumped images directory for the ISA it will be restored on, on
//! whichever side the migration runs it (origin or destination).

use std::path::Path;

use hcontainer_recode::image::{exe_of, native_to_translated, TranslatedExe};
use hcontainer_recode::store::Store;

use crate::isa;

/// Why a recode could not run.
#[derive(Debug, thiserror::Error)]
pub enum RecodeError {
    /// The image's ISA could not be read.
    #[error(transparent)]
    Isa(#[from] isa::IsaError),
    /// The recode itself failed.
    #[error(transparent)]
    Recode(#[from] hcontainer_recode::image::RecodeError),
    /// The translation store could not be used.
    #[error(transparent)]
    Store(#[from] hcontainer_recode::store::StoreError),
    /// No translation of the dumped executable for the target ISA.
    #[error("no translation of {exe} for {isa} in the store at {store}; make one with `hcontainer translate {exe} --target {isa}`")]
    NoTranslation {
        /// The dumped executable.
        exe: String,
        /// The target ISA.
        isa: String,
        /// The store.
        store: String,
    },
    /// A direction recode does not handle.
    #[error("recode of a {from} image for {to} is not available")]
    Unsupported {
        /// The image's ISA.
        from: String,
        /// The target ISA.
        to: String,
    },
}

/// Recodes the images in `input` into `output` (created) so they restore on an `isa` host,
/// running the program as its translation for `isa` (found in the store at `store`, or the
/// default store).
pub fn recode_for(input: &Path, isa: &str, store: Option<&Path>, output: &Path) -> Result<(), RecodeError> {
    let from = isa::image_isa(input)?;
    if from != "x86_64" || isa != "x86_64" {
        return Err(RecodeError::Unsupported { from, to: isa.to_string() });
    }
    let store = Store::open(store)?;
    let exe = exe_of(input)?;
    let translated = store.get_for(&exe, isa)?.ok_or_else(|| RecodeError::NoTranslation {
        exe: exe.display().to_string(),
        isa: isa.to_string(),
        store: store.root().display().to_string(),
    })?;
    let t = TranslatedExe::open(&translated)?;
    native_to_translated(input, &t, output)?;
    Ok(())
}
