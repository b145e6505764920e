//! Who a node is and whom it trusts: the node's key pair and certificate, the small
//! certificate authority (CA) of a group of nodes, and the TLS 1.3 configurations (rustls,
//! ring) with mutual certificate authentication that every agent conversation runs over.
//!
//! # Files
//!
//! A node's folder (default [`DEFAULT_NODE_DIR`], `/etc/hcontainer`) holds `node.key` (its
//! private key, ECDSA P-256, mode 0600, never leaves the node), `node.req` (the request a CA
//! signs: name and public key), `node.crt` (its certificate) and `ca.crt` (the one CA it
//! trusts). A CA's folder (default [`DEFAULT_CA_DIR`]) holds `ca.key` (0600), `ca.crt` and
//! `ca.name`. Joining a node: `hcontainer node init --name N` (key and request) on the node,
//! `hcontainer ca sign N.req` where the CA lives (certificate and CA certificate in one
//! bundle), `hcontainer node join N.crt` on the node.
//!
//! # Identity and roles
//!
//! A certificate names its node in the subject's common name (and as a DNS name) and
//! carries the role the CA gave it in the subject's organization: [`Role::Node`] (may push
//! jobs to agents, may act as an agent) or [`Role::Observer`] (may only ask `--status`; its
//! certificate is good for client authentication only, so it cannot pose as an agent). The
//! agent decides from the verified certificate alone — no bearer secret travels.
//!
//! # Handshake
//!
//! TLS 1.3 only, no session resumption (every connection verifies the peer's certificate),
//! both ends present certificates chaining to the same CA, within their validity window.
//! The client names the agent it expects (`NAME@HOST:PORT`) or accepts any node the CA
//! certified (and reports its name). The cipher suite follows the client's CPU: AES-GCM
//! where it has AES instructions, ChaCha20-Poly1305 where it has not (see
//! [`cipher_suites`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::x509;

/// Default folder of a node's key, certificate and CA certificate.
pub const DEFAULT_NODE_DIR: &str = "/etc/hcontainer";
/// Default folder of a CA.
pub const DEFAULT_CA_DIR: &str = "/etc/hcontainer/ca";
/// Environment variable naming the node folder.
pub const NODE_DIR_ENV: &str = "HCONTAINER_NODE_DIR";
/// Environment variable forcing a cipher suite (`aes128gcm`, `aes256gcm`, `chacha20`), for
/// measurements.
pub const CIPHER_ENV: &str = "HCONTAINER_TLS_CIPHER";
/// Default validity of a node certificate, in days.
pub const NODE_DAYS: u32 = 365;
/// Default validity of a CA certificate, in days.
pub const CA_DAYS: u32 = 3650;
/// First line of a request file.
const REQUEST_MAGIC: &str = "hcontainer-node-request 1";
/// Organization of a node certificate.
const ORG_NODE: &str = "hcontainer-node";
/// Organization of an observer certificate.
const ORG_OBSERVER: &str = "hcontainer-observer";
/// Server name given to rustls when the client accepts any certified node.
const ANY_NODE: &str = "any-node.hcontainer.invalid";

/// What a certified peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Push jobs to agents (and ask their status); serve as an agent.
    Node,
    /// Ask agents for their status only.
    Observer,
}

impl Role {
    fn org(self) -> &'static str {
        match self {
            Role::Node => ORG_NODE,
            Role::Observer => ORG_OBSERVER,
        }
    }
    fn from_org(org: Option<&str>) -> Option<Role> {
        match org {
            Some(ORG_NODE) => Some(Role::Node),
            Some(ORG_OBSERVER) => Some(Role::Observer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Observer => "observer",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "node" => Ok(Role::Node),
            "observer" => Ok(Role::Observer),
            other => Err(format!("unknown role {other:?} (node or observer)")),
        }
    }
}

/// Why keys, certificates or a TLS configuration could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{}: {why}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The node has no identity yet.
    #[error("{} is missing: this node has no certificate yet; set it up with\n  hcontainer node init --name NAME      (then have the CA sign NAME.req: hcontainer ca sign NAME.req)\n  hcontainer node join NAME.crt", path.display())]
    NoIdentity {
        /// The missing file.
        path: PathBuf,
    },
    /// A name that cannot be a node name.
    #[error("node name {0:?}: use 1 to 63 letters, digits, '-' and '.', starting with a letter or digit")]
    Name(String),
    /// Something would be overwritten.
    #[error("{} exists already (remove it first to start over)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A verifier could not be made.
    #[error("TLS verifier: {0}")]
    Verifier(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

fn bad(path: &Path, why: impl Into<String>) -> TlsError {
    TlsError::Bad { path: path.to_path_buf(), why: why.into() }
}

/// Checks a node name (also a DNS name in its certificate).
pub fn check_name(name: &str) -> Result<(), TlsError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !name.ends_with('.')
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(TlsError::Name(name.to_string()))
    }
}

/// SHA-256 of a DER certificate as `SHA256:` and lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut s = String::from("SHA256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn write_new(path: &Path, data: &[u8], mode: u32, force: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !force && path.exists() {
        return Err(TlsError::Exists { path: path.to_path_buf() });
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TlsError::NoIdentity { path: path.to_path_buf() }),
        Err(source) => Err(TlsError::Io { path: path.to_path_buf(), source }),
    }
}

fn make_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))
}

fn certs_of(path: &Path, text: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no certificate"));
    }
    Ok(certs)
}

fn pem_cert(der: &[u8]) -> String {
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    let b64 = base64(der);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn validity(days_before: i64, days: u32) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (now - time::Duration::days(days_before), now + time::Duration::days(i64::from(days)))
}

/// The subject and key usages of a CA named `name`: the same every time, so that the CA can
/// sign again from its key and name alone.
fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("hcontainer CA {name}"));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params
}

/// A certificate authority for a group of nodes.
pub struct Ca {
    name: String,
    key: rcgen::KeyPair,
    cert_pem: String,
    dir: PathBuf,
}

/// The public key a node asks a CA to certify (ECDSA P-256, the uncompressed point).
struct PublicKey(Vec<u8>);

impl rcgen::PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A node's request to a CA: its name and public key (the private key stays on the node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The node's name.
    pub name: String,
    /// Its public key (P-256 uncompressed point, 65 bytes).
    pub public_key: Vec<u8>,
}

impl Request {
    /// The request file's text.
    pub fn to_text(&self) -> String {
        let hex: String = self.public_key.iter().map(|b| format!("{b:02x}")).collect();
        format!("{REQUEST_MAGIC}\nname {}\npublic-key ecdsa-p256 {hex}\n", self.name)
    }

    /// Parses a request file (`path` for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Request, TlsError> {
        let mut lines = text.lines();
        if lines.next() != Some(REQUEST_MAGIC) {
            return Err(bad(path, format!("not an hcontainer node request (first line should be {REQUEST_MAGIC:?})")));
        }
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("name "))
            .ok_or_else(|| bad(path, "second line should be `name NAME`"))?;
        check_name(name)?;
        let hex = lines
            .next()
            .and_then(|l| l.strip_prefix("public-key ecdsa-p256 "))
            .ok_or_else(|| bad(path, "third line should be `public-key ecdsa-p256 HEX`"))?;
        let key: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        let key = key.filter(|k| k.len() == 65 && k[0] == 4).ok_or_else(|| bad(path, "the public key is not a P-256 point"))?;
        Ok(Request { name: name.to_string(), public_key: key })
    }
}

/// Folder of a node's identity.
#[derive(Clone, Debug)]
pub struct NodeDir(pub PathBuf);

impl NodeDir {
    /// `dir`, else `$HCONTAINER_NODE_DIR`, else [`DEFAULT_NODE_DIR`].
    pub fn resolve(dir: Option<&Path>) -> NodeDir {
        NodeDir(match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::var_os(NODE_DIR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| DEFAULT_NODE_DIR.into()),
        })
    }
    /// The private key.
    pub fn key(&self) -> PathBuf {
        self.0.join("node.key")
    }
    /// The request for the CA.
    pub fn request(&self) -> PathBuf {
        self.0.join("node.req")
    }
    /// The node's certificate.
    pub fn cert(&self) -> PathBuf {
        self.0.join("node.crt")
    }
    /// The CA certificate the node trusts.
    pub fn ca(&self) -> PathBuf {
        self.0.join("ca.crt")
    }
}

/// `hcontainer node init`: makes the node's key pair and its request; returns the request.
pub fn node_init(dir: &NodeDir, name: &str, force: bool) -> Result<Request, TlsError> {
    check_name(name)?;
    make_dir(&dir.0)?;
    if !force && dir.key().exists() {
        return Err(TlsError::Exists { path: dir.key() });
    }
    let key = rcgen::KeyPair::generate()?;
    let req = Request { name: name.to_string(), public_key: key.public_key_raw().to_vec() };
    write_new(&dir.key(), key.serialize_pem().as_bytes(), 0o600, force)?;
    write_new(&dir.request(), req.to_text().as_bytes(), 0o644, true)?;
    // A certificate of an earlier key would no longer match.
    let _ = std::fs::remove_file(dir.cert());
    Ok(req)
}

/// What `hcontainer node join` installed.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The node's name as certified.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The CA's subject.
    pub ca: String,
    /// The CA certificate's fingerprint.
    pub ca_fingerprint: String,
    /// End of the node certificate's validity.
    pub not_after: String,
}

/// `hcontainer node join`: installs a bundle a CA signed for this node (its certificate,
/// then the CA's), after checking that it certifies this node's own key. With
/// `ca_fingerprint`, the CA certificate must have it.
pub fn node_join(dir: &NodeDir, bundle: &Path, ca_fingerprint: Option<&str>) -> Result<Joined, TlsError> {
    let text = std::fs::read_to_string(bundle).map_err(io(bundle))?;
    let certs = certs_of(bundle, &text)?;
    let [cert, ca] = certs.as_slice() else {
        return Err(bad(bundle, format!("holds {} certificates; a bundle from `hcontainer ca sign` holds two (the node's, then the CA's)", certs.len())));
    };
    let req_path = dir.request();
    let req = Request::parse(&req_path, &read_text(&req_path)?)?;
    if !cert.as_ref().windows(req.public_key.len()).any(|w| w == req.public_key.as_slice()) {
        return Err(bad(bundle, format!("certifies another key than this node's ({})", dir.key().display())));
    }
    let subject = x509::subject(cert).ok_or_else(|| bad(bundle, "the node certificate cannot be read"))?;
    let ca_subject = x509::subject(ca).ok_or_else(|| bad(bundle, "the CA certificate cannot be read"))?;
    let ca_fp = fingerprint(ca);
    if let Some(want) = ca_fingerprint {
        if !want.eq_ignore_ascii_case(&ca_fp) {
            return Err(bad(bundle, format!("the CA certificate is {ca_fp}, not the expected {want}")));
        }
    }
    // The certificate must verify against the CA it came with, as a peer will check it.
    let roots = roots_of(bundle, std::slice::from_ref(ca))?;
    let provider = Arc::new(provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map_err(|e| bad(bundle, format!("the node certificate does not verify against the CA in the bundle: {e}")))?;
    let name = subject.common_name.clone().unwrap_or_default();
    if name != req.name {
        return Err(bad(bundle, format!("certifies {name:?}, this node asked as {:?}", req.name)));
    }
    let role = Role::from_org(subject.organization.as_deref())
        .ok_or_else(|| bad(bundle, "the certificate carries no hcontainer role"))?;
    write_new(&dir.cert(), pem_cert(cert).as_bytes(), 0o644, true)?;
    write_new(&dir.ca(), pem_cert(ca).as_bytes(), 0o644, true)?;
    Ok(Joined {
        name,
        role,
        ca: ca_subject.common_name.unwrap_or_default(),
        ca_fingerprint: ca_fp,
        not_after: subject.not_after.unwrap_or_default(),
    })
}

fn roots_of(path: &Path, cas: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca.clone()).map_err(|e| bad(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

impl Ca {
    /// `hcontainer ca init`: a new CA in `dir`.
    pub fn init(dir: &Path, name: &str, days: u32) -> Result<Ca, TlsError> {
        check_name(name)?;
        make_dir(dir)?;
        let key_path = dir.join("ca.key");
        if key_path.exists() {
            return Err(TlsError::Exists { path: key_path });
        }
        let key = rcgen::KeyPair::generate()?;
        let mut params = ca_params(name);
        (params.not_before, params.not_after) = validity(1, days);
        let cert = params.self_signed(&key)?;
        write_new(&key_path, key.serialize_pem().as_bytes(), 0o600, false)?;
        write_new(&dir.join("ca.crt"), cert.pem().as_bytes(), 0o644, true)?;
        write_new(&dir.join("ca.name"), format!("{name}\n").as_bytes(), 0o644, true)?;
        Ok(Ca { name: name.to_string(), key, cert_pem: cert.pem(), dir: dir.to_path_buf() })
    }

    /// Opens the CA in `dir`.
    pub fn open(dir: &Path) -> Result<Ca, TlsError> {
        let key_path = dir.join("ca.key");
        let key_text = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = rcgen::KeyPair::from_pem(&key_text).map_err(|e| bad(&key_path, e.to_string()))?;
        let name_path = dir.join("ca.name");
        let name = std::fs::read_to_string(&name_path).map_err(io(&name_path))?.trim().to_string();
        check_name(&name)?;
        let cert_path = dir.join("ca.crt");
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        certs_of(&cert_path, &cert_pem)?;
        Ok(Ca { name, key, cert_pem, dir: dir.to_path_buf() })
    }

    /// The CA's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate's fingerprint.
    pub fn fingerprint(&self) -> String {
        certs_of(&self.dir, &self.cert_pem).map(|c| fingerprint(&c[0])).unwrap_or_default()
    }

    /// Signs `req` with `role`, valid from one hour ago for `days`: the bundle (node
    /// certificate, then the CA's) that `hcontainer node join` installs.
    pub fn sign(&self, req: &Request, role: Role, days: u32) -> Result<String, TlsError> {
        let (_, not_after) = validity(0, days);
        let not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        self.sign_with_validity(req, role, not_before, not_after)
    }

    /// Signs `req` with an explicit validity window (tests make expired certificates).
    pub fn sign_with_validity(
        &self,
        req: &Request,
        role: Role,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<String, TlsError> {
        check_name(&req.name)?;
        let mut params = rcgen::CertificateParams::new(vec![req.name.clone()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, req.name.as_str());
        params.distinguished_name.push(rcgen::DnType::OrganizationName, role.org());
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match role {
            Role::Node => vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth],
            Role::Observer => vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        let mut serial = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut serial);
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.not_before = not_before;
        params.not_after = not_after;
        let issuer = rcgen::Issuer::new(ca_params(&self.name), &self.key);
        let cert = params.signed_by(&PublicKey(req.public_key.clone()), &issuer)?;
        Ok(format!("{}{}", cert.pem(), self.cert_pem))
    }
}

/// The crypto provider: ring, with the cipher suites in [`cipher_suites`] order.
pub fn provider() -> CryptoProvider {
    // ring offers no post-quantum key exchange (rustls marks it deprecated for that); X25519
    // and the NIST curves remain.
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = cipher_suites();
    p
}

/// Whether this CPU has AES and carry-less multiply instructions (what makes AES-GCM fast).
pub fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// TLS 1.3 suites in this side's order of preference: AES-128-GCM first on CPUs with AES
/// instructions, ChaCha20-Poly1305 first elsewhere (the agent follows the client's order);
/// `$HCONTAINER_TLS_CIPHER` puts one suite alone.
pub fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256 as A128, TLS13_AES_256_GCM_SHA384 as A256, TLS13_CHACHA20_POLY1305_SHA256 as C20};
    match std::env::var(CIPHER_ENV).as_deref() {
        Ok("aes128gcm") => return vec![A128],
        Ok("aes256gcm") => return vec![A256],
        Ok("chacha20") => return vec![C20],
        _ => {}
    }
    if has_aes_instructions() {
        vec![A128, A256, C20]
    } else {
        vec![C20, A128, A256]
    }
}

/// A peer as its verified certificate names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its certificate's fingerprint.
    pub fingerprint: String,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// The peer of a verified certificate chain (its first certificate).
pub fn peer_of(certs: Option<&[CertificateDer<'_>]>) -> Option<Peer> {
    let cert = certs?.first()?;
    let s = x509::subject(cert)?;
    Some(Peer { name: s.common_name?, role: Role::from_org(s.organization.as_deref())?, fingerprint: fingerprint(cert) })
}

/// How a certificate a verifier saw describes itself (for the log of a refusal; the claims
/// of an unverified certificate are only claims).
fn describe(cert: &CertificateDer<'_>) -> String {
    match x509::subject(cert) {
        Some(s) => format!(
            "certificate of {:?} ({}, valid until {}, {})",
            s.common_name.unwrap_or_default(),
            s.organization.unwrap_or_else(|| "no role".into()),
            s.not_after.unwrap_or_else(|| "?".into()),
            fingerprint(cert)
        ),
        None => format!("unreadable certificate {}", fingerprint(cert)),
    }
}

/// A node's loaded identity: what it presents and whom it trusts.
#[derive(Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    roots: Arc<RootCertStore>,
    /// This node as its certificate names it.
    pub me: Peer,
    /// Fingerprint of the CA it trusts.
    pub ca_fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("me", &self.me).field("ca", &self.ca_fingerprint).finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads the identity in `dir`.
    pub fn load(dir: &NodeDir) -> Result<Identity, TlsError> {
        let (cert_path, key_path, ca_path) = (dir.cert(), dir.key(), dir.ca());
        let chain = certs_of(&cert_path, &read_text(&cert_path)?)?;
        let key_text = read_text(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(key_text.as_bytes()).map_err(|e| bad(&key_path, format!("not a private key: {e}")))?;
        let cas = certs_of(&ca_path, &read_text(&ca_path)?)?;
        let roots = roots_of(&ca_path, &cas)?;
        let me = peer_of(Some(&chain)).ok_or_else(|| bad(&cert_path, "not an hcontainer node certificate (no name or role)"))?;
        let id = Identity {
            chain,
            key: Arc::new(key),
            roots,
            me,
            ca_fingerprint: fingerprint(&cas[0]),
            provider: Arc::new(provider()),
        };
        // Fail now, with the file named, rather than at the first connection.
        id.server_config(Arc::default()).map_err(|e| bad(&cert_path, e.to_string()))?;
        Ok(id)
    }

    /// The agent's configuration for one connection: `refused` receives the description of
    /// a client certificate the verifier saw (the agent logs it when the handshake fails).
    pub fn server_config(&self, seen: Arc<Mutex<Option<String>>>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::clone(&self.roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier = Arc::new(SeenClientVerifier { inner, seen });
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Arc::new(config))
    }

    /// A client's configuration: the agent must be `expect` when given, else any node the
    /// CA certified. Returns the configuration and the server name to use.
    pub fn client_config(&self, expect: Option<&str>) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), TlsError> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::clone(&self.roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier = Arc::new(NodeServerVerifier { inner, any_name: expect.is_none() });
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.resumption = rustls::client::Resumption::disabled();
        let name = match expect {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => ANY_NODE.to_string(),
        };
        let name = ServerName::try_from(name).map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok((Arc::new(config), name))
    }
}

/// The agent's client verifier: webpki against the CA, remembering what it was shown.
#[derive(Debug)]
struct SeenClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    seen: Arc<Mutex<Option<String>>>,
}

impl ClientCertVerifier for SeenClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], now: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(describe(end_entity));
        }
        self.inner.verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The client's verifier of an agent: webpki against the CA (chain, validity, server
/// authentication usage, which observer certificates lack), and the name the client asked
/// for unless it accepts any certified node.
#[derive(Debug)]
struct NodeServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    any_name: bool,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }))
                if self.any_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A throw-away CA and node identities in a temporary folder, for tests and the testbed.
pub mod testing {
    use super::*;

    /// Makes `<dir>/ca` and, for each `(name, role)`, `<dir>/<name>` holding a joined
    /// identity. Returns the CA.
    pub fn make(dir: &Path, ca_name: &str, nodes: &[(&str, Role)]) -> Result<Ca, TlsError> {
        let ca = Ca::init(&dir.join("ca"), ca_name, 30)?;
        for (name, role) in nodes {
            let nd = NodeDir(dir.join(name));
            let req = node_init(&nd, name, false)?;
            let bundle = nd.0.join(format!("{name}.crt"));
            std::fs::write(&bundle, ca.sign(&req, *role, 30)?).map_err(io(&bundle))?;
            node_join(&nd, &bundle, None)?;
        }
        Ok(ca)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_sign_join_load() {
        let d = tempfile::tempdir().unwrap();
        let ca = testing::make(d.path(), "test", &[("edge-1", Role::Node), ("watch", Role::Observer)]).unwrap();
        let id = Identity::load(&NodeDir(d.path().join("edge-1"))).unwrap();
        assert_eq!(id.me.name, "edge-1");
        assert_eq!(id.me.role, Role::Node);
        assert_eq!(id.ca_fingerprint, ca.fingerprint());
        let w = Identity::load(&NodeDir(d.path().join("watch"))).unwrap();
        assert_eq!(w.me.role, Role::Observer);
        // The key is private.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("edge-1/node.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The CA signs again from its folder.
        let ca2 = Ca::open(ca.dir()).unwrap();
        let req = node_init(&NodeDir(d.path().join("edge-2")), "edge-2", false).unwrap();
        let bundle = d.path().join("edge-2.crt");
        std::fs::write(&bundle, ca2.sign(&req, Role::Node, 1).unwrap()).unwrap();
        let j = node_join(&NodeDir(d.path().join("edge-2")), &bundle, Some(&ca.fingerprint())).unwrap();
        assert_eq!((j.name.as_str(), j.role), ("edge-2", Role::Node));
    }

    #[test]
    fn join_refuses_a_bundle_for_another_key_or_ca() {
        let d = tempfile::tempdir().unwrap();
        let ca = testing::make(d.path(), "one", &[]).unwrap();
        let a = NodeDir(d.path().join("a"));
        let b = NodeDir(d.path().join("b"));
        node_init(&a, "a", false).unwrap();
        let req_b = node_init(&b, "b", false).unwrap();
        let bundle = d.path().join("b.crt");
        std::fs::write(&bundle, ca.sign(&req_b, Role::Node, 1).unwrap()).unwrap();
        let e = node_join(&a, &bundle, None).unwrap_err().to_string();
        assert!(e.contains("another key"), "{e}");
        let e = node_join(&b, &bundle, Some("SHA256:00")).unwrap_err().to_string();
        assert!(e.contains("not the expected"), "{e}");
        assert!(!b.cert().exists());
        let e = node_init(&a, "a", false).unwrap_err().to_string();
        assert!(e.contains("exists already"), "{e}");
        assert!(node_init(&a, "bad name", true).is_err());
        let e = Identity::load(&NodeDir(d.path().join("none"))).unwrap_err().to_string();
        assert!(e.contains("hcontainer node init"), "{e}");
    }

    #[test]
    fn requests_parse_strictly() {
        let p = Path::new("r");
        let r = Request { name: "n1".into(), public_key: { let mut k = vec![4u8]; k.extend([7u8; 64]); k } };
        assert_eq!(Request::parse(p, &r.to_text()).unwrap(), r);
        for bad in ["", "x", "hcontainer-node-request 1\nname a b\n", &r.to_text().replace("04", "05"), &r.to_text()[..60]] {
            assert!(Request::parse(p, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
