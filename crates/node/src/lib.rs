//! The migration service of hcontainer: a node agent that receives CRIU images, recodes them
//! for its own ISA when needed and restores them; the client side that checkpoints a process
//! (optionally with pre-copy rounds), streams its images and decides when the source may go;
//! and the wire protocol between the two.
//!
//! # Wire protocol (version [`proto::PROTOCOL_VERSION`])
//!
//! One TCP connection carries one conversation, inside TLS 1.3 with mutual certificate
//! authentication ([`tls`]: rustls with ring; both ends present a certificate of the same
//! CA; no session resumption). The agent verifies the client's certificate during the
//! handshake, so a peer without one, with one of another CA, or with an expired one is
//! refused before the agent reads a single byte of the conversation, and the refusal is
//! logged with what the certificate claims and its fingerprint. The certificate then
//! decides what the peer may do ([`tls::Role`]): `Begin` needs a node certificate (and the
//! agent's `--push-from` list, when it has one), `Status` any certified peer. An agent
//! started with [`agent::Security::InsecurePlaintext`] speaks the same conversation in
//! clear with no authentication, and refuses to listen on anything but loopback.
//!
//! Inside the transport, both ends first send an 8-byte preamble:
//! the magic `HCNODE` and the protocol version as a little-endian `u16`; a peer that reads a
//! different magic or version closes the connection (the agent answers with an
//! [`proto::Reply::Error`] first when it can).
//!
//! After the preamble everything is a *frame* ([`frame`]): a 5-byte header — one kind byte
//! and the body length as a little-endian `u32` — then the body:
//!
//! | kind | body | limit |
//! |---|---|---|
//! | `1` control | one JSON message: [`proto::Request`] (client → agent) or [`proto::Reply`] (agent → client) | [`frame::MAX_CONTROL_LEN`] |
//! | `2` data | the uncompressed length as a little-endian `u32`, then an LZ4 block of it | [`frame::MAX_DATA_LEN`] uncompressed, [`frame::MAX_FRAME_LEN`] on the wire |
//!
//! A conversation: `Hello` (protocol version; the agent answers `Welcome` with its ISA, or
//! an error and closes) — then any of
//! `Status`, or one *job*: `Begin` → `Begun { job }`; then for each images directory, in
//! order, `Dir`, its files as `File { path, size, mode }` each followed by data frames
//! holding exactly `size` bytes, and the `parent` links of incremental dumps as `Link`;
//! `Restore { dir, … }` (the agent recodes when asked or when the image's ISA is not its
//! own, restores detached, checks that the process runs) → `Restored { pid, … }`; then
//! `Commit` → `Committed`, after which the client may end the source. Every request but
//! `File`, `Dir` and `Link` gets exactly one reply; the upload requests are answered only
//! on failure (an `Error` reply, after which the agent closes the connection).
//!
//! Paths in `Dir`, `File`, `Link` and `Restore` are relative to the job's folder, made of
//! plain names (no `..`, no `.`, not absolute, no NUL) and never traverse a symbolic link;
//! a `Link` target must be `../<dir>` naming another directory of the same job (CRIU's
//! `parent` link). Sizes are bounded per file and per job ([`agent::Limits`]). Before a
//! restore the agent checks the images ([`validate`]): every file a CRIU image that decodes
//! with hcontainer's codec, process images only of the dumped tree's pids, credentials
//! within the agent's policy.
//!
//! A job that has not been committed when its connection ends — client gone mid-transfer,
//! a failed restore, a disconnect between `Restored` and `Commit` — is undone: a process it
//! restored is killed and its folder removed, so a failed migration leaves nothing behind on
//! the agent, while the source, which the client only ends after `Committed`, keeps running.
//!
//! Compatibility: the version changes whenever a message or frame changes meaning; a new
//! optional field in a JSON message (defaulted when absent) is compatible and keeps it.
//! Version 2 moved the conversation into TLS and dropped the token of `Hello`; a version 1
//! peer fails the TLS handshake (the agent logs "not a TLS client").
//!
//! CRIU's own page server is not used: pre-copy rounds are dumps streamed through this
//! protocol, so page data only ever crosses the network inside this TLS channel.
//!
//! # A hop, source side ([`migrate()`])
//!
//! 1. Connect, TLS handshake with this node's certificate (a refusal touches nothing).
//! 2. Pre-copy rounds ([`dump`]): CRIU pre-dumps with `--track-mem` where the kernel tracks
//!    dirty pages; elsewhere (no soft-dirty: this kernel, every arm64 kernel) full dumps with
//!    `--leave-running` turned into incremental images by page content ([`delta`]). Each
//!    round is streamed while the process runs, and counts as sent when a `Status` round
//!    trip behind its data returns (the agent has read it all).
//! 3. When the destination will run another form of the program ([`recode::plan`]), notify
//!    brings every thread to a migration point and holds it there.
//! 4. The final dump leaves the source stopped (or held by notify), never killed.
//! 5. Recode at the origin or on the destination ([`RecodeAt`]), transfer, restore.
//! 6. `Commit`, then the source is killed; any failure before resumes it.
//!
//! Downtime is measured on the source's clock from the start of step 3 (or 4) to the
//! agent's `Restored`.
//!
//! # What a destination needs
//!
//! As for any CRIU restore, the files the process has open or mapped must exist at the same
//! paths on the destination (a shared or copied file system, as containers have). For recode
//! on the destination, the agent's translation store must hold the translation for its ISA
//! and the original binary must be readable at its path; for recode at the origin, the
//! translated executable must exist on the destination at the path the origin's store gave
//! it (both default stores are `~/.cache/hcontainer/store`). CRIU restores a tree with its
//! original pids, so a migration between two agents of one machine works for programs that
//! run in their own pid namespace (`unshare --pid --fork setsid PROG`), as containers do; for
//! others the restore fails with "pid in use" and the source runs on.
#![deny(missing_docs)]

pub mod agent;
pub mod client;
pub mod delta;
pub mod dump;
pub mod frame;
pub mod isa;
pub mod migrate;
pub mod objects;
pub mod paths;
pub mod proto;
pub mod recode;
pub mod tls;
pub mod validate;
pub mod x509;

pub use agent::{Agent, AgentConfig, AgentError, AgentHandle, Limits, Security};
pub use client::{Client, ClientError, ClientSecurity};
pub use migrate::{migrate, HopTimings, MigrateError, MigrateOptions, MigrationReport, Progress, RecodeAt};
pub use recode::RunAs;
