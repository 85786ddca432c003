//! HTTPS (DESIGN.md §10, "in transit"): the node's certificate and the TLS
//! listener the pages are served on.
//!
//! The certificate is the installer's (`[web] tls = { cert, key }`, PEM files), or
//! one the node made for itself at its first start (`tls = "auto"`), kept in
//! `<storage dir>/tls/` (`node-cert.pem`, and `node-key.pem` readable by its owner
//! only) and used again at every start. Nobody vouches for a certificate the node
//! made itself: a browser trusts it once the person setting up the wall screen has
//! compared its fingerprint, which the node prints at start and shows on
//! `/installer`, with what the browser shows ("pinning" it). Two fingerprints are
//! given: SHA-256 of the whole certificate, what browsers display, and SHA-256 of
//! its public key (base64), what `curl --pinnedpubkey sha256//…` and Chromium's
//! `--ignore-certificate-errors-spki-list` take.
//!
//! Handshakes run beside the accept loop, each with a deadline and a bounded
//! number at once, so that a client that opens a connection and sends nothing
//! holds up nobody else.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The directory under the storage directory where the node keeps the
/// certificate it made.
pub const TLS_DIR: &str = "tls";
/// The certificate the node made, PEM.
pub const GENERATED_CERT: &str = "node-cert.pem";
/// Its private key, PEM, mode 0600.
pub const GENERATED_KEY: &str = "node-key.pem";

/// The longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, at most; further connections wait to start
/// theirs (the kernel's backlog holds them).
pub const HANDSHAKES_AT_ONCE: usize = 64;

/// Marks a request that came over the node's own TLS listener (a request
/// extension): its cookies are `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// A certificate and key that cannot be used, with the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn bad(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError(format!("{}: {why}", path.display()))
}

/// The node's HTTPS identity: the server configuration and how people check it.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<ServerConfig>,
    /// What is shown of it (fingerprints, where the certificate is).
    pub shown: TlsShown,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

/// What the node prints at start and `/installer` shows of its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsShown {
    /// SHA-256 of the certificate (DER), upper-case hex pairs joined by `:`, as
    /// browsers show it.
    pub fingerprint: String,
    /// SHA-256 of the certificate's public key (its SubjectPublicKeyInfo), base64.
    pub spki_sha256: String,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// Whether the node made it (no authority vouches for it: pin it).
    pub generated: bool,
}

/// rustls on ring, the provider the rest of the tree already builds (aws-lc would
/// add a C library and minutes of build on a small board). rustls 0.23.48 marks it
/// deprecated because ring has no post-quantum key exchange: classic X25519 and
/// P-256 are what the node offers.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsIdentity {
    /// The installer's certificate (chain, leaf first) and key, PEM files.
    pub fn from_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let chain = read_chain(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            bad(
                key,
                format!("no private key could be read from it (PEM, PKCS#8, PKCS#1 or SEC1): {e}"),
            )
        })?;
        TlsIdentity::new(chain, key_der, cert, key, false)
    }

    /// The certificate the node made at an earlier start, or a new one made now
    /// (and kept) for `names`: host names and IP addresses it is reached by.
    pub fn load_or_generate(dir: &Path, names: &[String]) -> Result<TlsIdentity, TlsError> {
        let tls_dir = dir.join(TLS_DIR);
        let cert = tls_dir.join(GENERATED_CERT);
        let key = tls_dir.join(GENERATED_KEY);
        match (cert.exists(), key.exists()) {
            (true, true) => {
                check_private(&key)?;
                let mut identity = TlsIdentity::from_files(&cert, &key)?;
                identity.shown.generated = true;
                Ok(identity)
            }
            (false, false) => {
                generate(&tls_dir, &cert, &key, names)?;
                let mut identity = TlsIdentity::from_files(&cert, &key)?;
                identity.shown.generated = true;
                tracing::info!(cert = %cert.display(), names = ?names, "new HTTPS certificate made");
                Ok(identity)
            }
            (true, false) => Err(bad(
                &key,
                format!(
                    "missing, though {} is there: restore it, or delete both to have a new certificate made (its fingerprint changes)",
                    cert.display()
                ),
            )),
            (false, true) => Err(bad(
                &cert,
                format!(
                    "missing, though {} is there: restore it, or delete both to have a new certificate made (its fingerprint changes)",
                    key.display()
                ),
            )),
        }
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key_der: PrivateKeyDer<'static>,
        cert_path: &Path,
        key_path: &Path,
        generated: bool,
    ) -> Result<TlsIdentity, TlsError> {
        let provider = provider();
        let signing = provider
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| bad(key_path, format!("the private key cannot be used: {e}")))?;
        let spki = signing.public_key().ok_or_else(|| {
            bad(
                key_path,
                "the public key of this private key cannot be derived",
            )
        })?;
        let leaf = chain.first().cloned().ok_or_else(|| {
            bad(
                cert_path,
                "no certificate in it (expected PEM `CERTIFICATE` blocks)",
            )
        })?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| {
                bad(
                    cert_path,
                    format!("cannot be used with the key {}: {e}", key_path.display()),
                )
            })?;
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            config: Arc::new(config),
            shown: TlsShown {
                fingerprint: colon_hex(&Sha256::digest(leaf.as_ref())),
                spki_sha256: base64::engine::general_purpose::STANDARD
                    .encode(Sha256::digest(spki.as_ref())),
                cert_path: cert_path.to_path_buf(),
                generated,
            },
        })
    }

    /// The rustls server configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

fn read_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter = CertificateDer::pem_file_iter(cert).map_err(|e| bad(cert, e))?;
    let chain = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(
            cert,
            "no certificate in it (expected PEM `CERTIFICATE` blocks)",
        ));
    }
    Ok(chain)
}

/// Upper-case hex pairs joined by `:`.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The key the node made must be its owner's alone: a key others on the machine
/// could read is refused rather than used.
fn check_private(key: &Path) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key)
            .map_err(|e| bad(key, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(bad(
                key,
                format!(
                    "readable by others (mode {:o}); make it the node's alone: chmod 600 {}",
                    mode & 0o777,
                    key.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Makes a self-signed certificate for `names` and writes it with its key: the key
/// first, created 0600, then the certificate; each synced and renamed into place.
fn generate(tls_dir: &Path, cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    std::fs::create_dir_all(tls_dir).map_err(|e| bad(tls_dir, e))?;
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError(format!("cannot make a key: {e}")))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| {
        TlsError(format!(
            "the names {names:?} cannot go in a certificate: {e}"
        ))
    })?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("communalia", String::as_str),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Communalia node");
    let today = chrono::Utc::now().date_naive();
    let (y, m, d) = {
        use chrono::Datelike;
        (today.year(), today.month() as u8, today.day() as u8)
    };
    // From yesterday (a wall screen's clock a little behind), for 20 years: a
    // pinned certificate is not renewed.
    params.not_before = rcgen::date_time_ymd(y, m, d) - time_day();
    params.not_after = rcgen::date_time_ymd(y + 20, m, d.min(28));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|e| TlsError(format!("cannot make the certificate: {e}")))?;
    write_new(key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_new(cert, certificate.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn time_day() -> std::time::Duration {
    std::time::Duration::from_secs(86_400)
}

/// Writes `bytes` to `path` whole or not at all, with `mode` from its creation.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(|e| bad(&tmp, e))?;
    file.write_all(bytes).map_err(|e| bad(&tmp, e))?;
    file.sync_all().map_err(|e| bad(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| bad(path, e))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The names a certificate the node makes is valid for: `localhost` and the
/// loopback addresses, the machine's host name (and its `.local` mDNS name), the
/// address the server binds when it is a specific one, the address this machine
/// goes out on to its LAN, and the names the configuration adds.
pub fn default_names(bind: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        let n = n.trim().trim_end_matches('.').to_string();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    for n in extra {
        add(n.clone());
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            add(host.to_string());
            if !host.contains('.') {
                add(format!("{host}.local"));
            }
        }
    }
    if !bind.ip().is_unspecified() {
        add(bind.ip().to_string());
    }
    // The source address of a route towards the outside: no packet is sent.
    if let Ok(socket) = std::net::UdpSocket::bind("0.0.0.0:0")
        && socket.connect("192.0.2.1:9").is_ok()
        && let Ok(local) = socket.local_addr()
        && !local.ip().is_unspecified()
    {
        add(local.ip().to_string());
    }
    add("localhost".to_string());
    add("127.0.0.1".to_string());
    add("::1".to_string());
    names
}

/// Accepts TCP connections and hands over those whose TLS handshake finished,
/// with the client's address, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Starts accepting on `listener` until `stop` is cancelled.
    pub fn start(
        listener: TcpListener,
        identity: &TlsIdentity,
        stop: CancellationToken,
    ) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(identity.server_config());
        let (tx, rx) = mpsc::channel(HANDSHAKES_AT_ONCE);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
        tokio::spawn(async move {
            loop {
                let slot = tokio::select! {
                    _ = stop.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                };
                let (tcp, peer) = tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: wait, as axum does.
                            tracing::warn!(error = %e, "HTTPS accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // Stopped: the server's graceful shutdown ends the wait.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "communalia-tls-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        p
    }

    #[test]
    fn a_made_certificate_is_kept_private_and_used_again() {
        let dir = temp("keep");
        let names = vec!["solar.example".to_string(), "192.168.1.5".to_string()];
        let first = TlsIdentity::load_or_generate(&dir, &names).expect("made");
        assert!(first.shown.generated);
        let key = dir.join(TLS_DIR).join(GENERATED_KEY);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
        }
        let again = TlsIdentity::load_or_generate(&dir, &names).expect("loaded");
        assert_eq!(
            first.shown, again.shown,
            "the same certificate at the next start"
        );
        assert_eq!(first.shown.fingerprint.len(), 32 * 3 - 1);
        // A key others can read is refused, naming the file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = TlsIdentity::load_or_generate(&dir, &names)
                .expect_err("a readable key")
                .to_string();
            assert!(
                err.contains("node-key.pem") && err.contains("chmod 600"),
                "{err}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lone_certificate_without_its_key_is_refused() {
        let dir = temp("lone");
        TlsIdentity::load_or_generate(&dir, &["a.example".to_string()]).expect("made");
        std::fs::remove_file(dir.join(TLS_DIR).join(GENERATED_KEY)).expect("rm key");
        let err = TlsIdentity::load_or_generate(&dir, &[])
            .expect_err("no key")
            .to_string();
        assert!(
            err.contains("node-key.pem") && err.contains("missing"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn installer_files_that_do_not_fit_are_refused_with_the_file_named() {
        let dir = temp("files");
        let a =
            TlsIdentity::load_or_generate(&dir.join("a"), &["a.example".to_string()]).expect("a");
        let b_dir = dir.join("b");
        TlsIdentity::load_or_generate(&b_dir, &["b.example".to_string()]).expect("b");
        let a_cert = a.shown.cert_path.clone();
        let b_key = b_dir.join(TLS_DIR).join(GENERATED_KEY);
        // A key that is not the certificate's.
        let err = TlsIdentity::from_files(&a_cert, &b_key)
            .expect_err("mismatch")
            .to_string();
        assert!(err.contains(&a_cert.display().to_string()), "{err}");
        // Not PEM at all.
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, b"not a certificate").expect("junk");
        let err = TlsIdentity::from_files(&junk, &b_key)
            .expect_err("junk cert")
            .to_string();
        assert!(
            err.contains("junk.pem") && err.contains("no certificate"),
            "{err}"
        );
        let err = TlsIdentity::from_files(&a_cert, &junk)
            .expect_err("junk key")
            .to_string();
        assert!(
            err.contains("junk.pem") && err.contains("private key"),
            "{err}"
        );
        // Missing file.
        let err = TlsIdentity::from_files(&dir.join("nope.pem"), &b_key)
            .expect_err("missing")
            .to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_names_include_loopback_and_the_extra_names_first() {
        let names = default_names("0.0.0.0:443".parse().expect("addr"), &["solar.lan".into()]);
        assert_eq!(names[0], "solar.lan");
        for n in ["localhost", "127.0.0.1", "::1"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|x| x == "0.0.0.0"), "{names:?}");
    }
}
