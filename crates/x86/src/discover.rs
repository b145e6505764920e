//! Code discovery: which guest addresses are functions and block starts.

use crate::guest::{GuestBinary, GuestError};

/// One discovered guest function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionMap {
    /// Entry address.
    pub entry: u64,
    /// End of the function's extent when known (FDE or symbol), exclusive.
    pub end: Option<u64>,
    /// Known block starts in this function (sorted, deduplicated, includes `entry`):
    /// branch targets, jump-table targets, and — for functions with an indirect jump that is
    /// not a recognized jump table — every instruction boundary.
    pub leaders: Vec<u64>,
}

/// Result of code discovery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeMap {
    /// Functions, sorted by entry, entries unique.
    pub functions: Vec<FunctionMap>,
}

/// Find the functions and block starts of `bin`.
pub fn discover(_bin: &GuestBinary) -> Result<CodeMap, GuestError> {
    Ok(CodeMap::default())
}
