//! A tiny HTTPS server for one fixed JSON body, with a certificate for
//! 127.0.0.1 signed by a throwaway CA (made with `openssl`): an issuer's
//! JWKS as a Kubernetes API server serves it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// A running server: its base URL and the CA file that trusts it.
pub struct Https {
    pub url: String,
    pub ca_file: PathBuf,
    dir: PathBuf,
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `openssl` with `args` split at spaces, run in `dir`.
fn openssl(dir: &std::path::Path, args: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .output()
        .expect("openssl must be installed to run these tests");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// Serves `body` as `application/json` at every path, until the test ends.
pub fn serve(body: String) -> Https {
    let dir = std::env::temp_dir().join(format!(
        "marketplace-simulator-tls-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let rsa = "-newkey rsa:2048 -nodes";
    openssl(
        &dir,
        &format!("req -x509 {rsa} -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca"),
    );
    openssl(
        &dir,
        &format!("req {rsa} -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &dir,
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \
         -days 1 -extfile leaf.ext",
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("leaf.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let config = Arc::new(config);
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            // A client that refuses the certificate ends its connection
            // in the handshake: the next one is served all the same.
            let _ = answer(&config, tcp, &body);
        }
    });
    Https {
        url,
        ca_file: dir.join("ca.pem"),
        dir,
    }
}

fn answer(
    config: &Arc<rustls::ServerConfig>,
    tcp: std::net::TcpStream,
    body: &str,
) -> std::io::Result<()> {
    let conn = rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    write!(
        tls,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}
