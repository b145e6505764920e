//! CRIU integration: finds a usable CRIU (≥ 4.0), runs `criu check`, dumps and restores
//! process trees with the `criu` command line, reads CRIU's `stats-dump` / `stats-restore`
//! images into a timing breakdown, and turns failures into errors that quote CRIU's log.

mod locate;
pub mod proc;
mod run;

pub use locate::{Criu, LocateError};
pub use locate::CRIU_ENV;
pub use run::{
    last_error_line, mark_stopped_alive, write_timings, CriuError, DumpOptions, RestoreOptions, RestoreOutcome, Timings,
    DEFAULT_NETWORK_LOCK, TIMINGS_DUMP_FILE, TIMINGS_RESTORE_FILE,
};
