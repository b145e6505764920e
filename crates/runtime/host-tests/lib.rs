//! The runtime's dependency-free modules compiled for the build host, so they can be unit
//! tested with the standard test harness (the runtime itself is a `no_std` staticlib).

#[path = "../src/syscall/conv.rs"]
pub mod conv;
#[path = "../src/syscall/table.rs"]
pub mod table;
#[path = "../src/place.rs"]
pub mod place;
