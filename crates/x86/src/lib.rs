//! x86-64 front end.
