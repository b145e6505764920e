//! CRIU integration.
