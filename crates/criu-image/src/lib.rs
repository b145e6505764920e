//! CRIU image codec.
