//! A Redis server that speaks TLS only and requires a password (`requirepass`), as ElastiCache with
//! in-transit encryption and an AUTH token does: its CA and server certificate are made here (rcgen),
//! the server (`redis-server` with TLS, as Debian builds it) listens on a free loopback port, its files
//! in a temp dir. [`TlsRedis::start`] is one test's own, stopped when dropped; [`TlsRedis::shared`] is
//! one for the whole test process (the contract suite), stopped by a watchdog when the process ends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use shared::adapters::redis::RedisAccess;
use shared::secret::Secret;
use tempfile::TempDir;

/// The server's files: the CA that signed its certificate, the certificate and its key.
const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "server.pem";
const KEY_FILE: &str = "server-key.pem";

pub struct TlsRedis {
    /// `redis-server` itself, or for the shared one its watchdog.
    process: Child,
    port: u16,
    dir: PathBuf,
    /// Removes the files when an owned server is dropped; `None` for the shared one (the watchdog's).
    _owned_dir: Option<TempDir>,
    token: String,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl TlsRedis {
    /// A server of the calling test's own.
    pub fn start() -> Self {
        let dir = TempDir::new().expect("a temp dir");
        let path = dir.path().to_path_buf();
        let (port, token) = (free_port(), random_token());
        write_certificates(&path);
        let process = Command::new("redis-server")
            .args(server_args(&path, port, &token))
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (make test installs it)");
        Self::ready(process, port, path, Some(dir), token)
    }

    /// One server for every test of the process that asks for it, under their own key prefixes.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<TlsRedis> = OnceLock::new();
        SHARED.get_or_init(|| {
            let path = TempDir::new().expect("a temp dir").keep();
            let (port, token) = (free_port(), random_token());
            write_certificates(&path);
            // The test process never drops a static: the watchdog stops the server (and removes its
            // files) once the process is gone.
            let watchdog = format!(
                "redis-server \"$@\" & server=$!; \
                 while kill -0 {} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
                 kill $server; wait $server; rm -rf '{}'",
                std::process::id(),
                path.display()
            );
            let process = Command::new("sh")
                .args(["-c", &watchdog, "sh"])
                .args(server_args(&path, port, &token))
                .stdout(Stdio::null())
                .spawn()
                .expect("sh and redis-server run");
            Self::ready(process, port, path, None, token)
        })
    }

    fn ready(
        process: Child,
        port: u16,
        dir: PathBuf,
        owned_dir: Option<TempDir>,
        token: String,
    ) -> Self {
        let server = Self {
            process,
            port,
            dir,
            _owned_dir: owned_dir,
            token,
        };
        let deadline = Instant::now() + crate::socketio::PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen for TLS on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `rediss://` on loopback (the certificate names `127.0.0.1` and `localhost`).
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// What a client needs: the token, and the CA beside the default roots.
    pub fn access(&self) -> RedisAccess {
        RedisAccess {
            auth_token: Some(Secret::new(self.token.clone())),
            ca_file: Some(self.ca_file()),
        }
    }
}

fn server_args(dir: &std::path::Path, port: u16, token: &str) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    [
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &file(CERT_FILE),
        "--tls-key-file",
        &file(KEY_FILE),
        "--tls-ca-cert-file",
        &file(CA_FILE),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        token,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A CA, and a server certificate it signed for `127.0.0.1` and `localhost`, written into `dir`.
fn write_certificates(dir: &std::path::Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "e2e TLS Redis CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a CA key"))
        .expect("a self-signed CA");
    let server_key = KeyPair::generate().expect("a server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server parameters")
        .signed_by(&server_key, &ca)
        .expect("a server certificate");
    for (name, pem) in [
        (CA_FILE, ca.pem()),
        (CERT_FILE, server.pem()),
        (KEY_FILE, server_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).expect("write a certificate file");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn random_token() -> String {
    format!("token-{}", uuid::Uuid::new_v4().simple())
}
