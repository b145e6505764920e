//! Installs CRIU (≥ 4, Debian trixie packages) into a private prefix.
