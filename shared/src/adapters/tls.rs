//! TLS for every HTTPS client in the process, set up without reading a
//! certificate file: ring is the one crypto provider, and the trusted roots
//! are compiled in. Loading the platform's roots (every file in
//! `/etc/ssl/certs`, then decoding and parsing ~150 certificates) was most of
//! a cold start's set-up time.
//!
//! - [`client_config`]: the calendar clients' configuration (reqwest), with
//!   Mozilla's root program as `webpki-roots` ships it: already parsed trust
//!   anchors, so building it costs microseconds. async-stripe builds its own
//!   from the same process provider and the same `webpki-roots` anchors (its
//!   builder takes no configuration).
//! - [`aws_trust_store`]: the AWS SDK's roots. The SDK's connector takes roots
//!   only as PEM and decodes them whenever it builds a connector (by default
//!   once per client and again on its first request; once per process with
//!   [`super::aws::http_client`]). Decoding Mozilla's whole set costs 0.6 to
//!   1 ms each time, so it gets just the roots AWS endpoints chain to, plus
//!   any bundle named by `AWS_CA_BUNDLE`.

use aws_smithy_http_client::tls::TrustStore;
use std::sync::{Arc, LazyLock};

/// Amazon Trust Services' roots, which every AWS service endpoint's
/// certificate chains to (the migration to them finished in 2022).
const AWS_ROOTS_PEM: &[u8] = include_bytes!("aws-roots.pem");

/// Makes ring the process's TLS crypto provider, unless one is installed
/// already: rustls refuses to guess when a build compiles in two (the
/// workspace's test tools bring aws-lc-rs). Every client constructor here calls
/// this first. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

static CLIENT_CONFIG: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    install_crypto_provider();
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    // The calendar clients speak HTTP/1.1 only (reqwest without `http2`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
});

/// The process's one rustls client configuration: the installed provider,
/// its safe default protocol versions, Mozilla's roots (`webpki-roots`), and
/// ALPN `http/1.1`. Built on first use.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    Arc::clone(&CLIENT_CONFIG)
}

/// The AWS SDK's roots: Amazon Trust Services' (`AWS_ROOTS_PEM`, compiled in), and the
/// PEM bundle at `AWS_CA_BUNDLE` if that is set, as the AWS CLI reads it (for
/// endpoints that chain elsewhere: a TLS-inspecting proxy, an https stand-in,
/// a partition outside `aws`). A bundle that cannot be read is logged and
/// left out, which makes calls to the endpoints it was for fail visibly.
pub fn aws_trust_store() -> TrustStore {
    let mut store = TrustStore::empty().with_native_roots(false).with_pem_certificate(AWS_ROOTS_PEM);
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        match read_pem_bundle(&path) {
            Ok(pem) => store = store.with_pem_certificate(pem),
            Err(e) => tracing::warn!(path = %path.to_string_lossy(), error = %e, "AWS_CA_BUNDLE left out"),
        }
    }
    store
}

/// The PEM file at `path`, once every block in it has parsed as a trust
/// anchor: the SDK panics on a block that does not.
fn read_pem_bundle(path: &std::ffi::OsStr) -> Result<Vec<u8>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        store.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    if store.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn aws_roots_are_the_amazon_trust_services_roots_of_mozillas_program() {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AWS_ROOTS_PEM).collect::<Result<_, _>>().unwrap();
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        for cert in certs {
            store.add(cert).unwrap();
        }
        for anchor in &store.roots {
            assert!(webpki_roots::TLS_SERVER_ROOTS.contains(anchor), "{anchor:?} is not in webpki-roots");
        }
    }

    #[test]
    fn the_shared_configuration_is_built_once_and_speaks_http1() {
        let config = client_config();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(Arc::ptr_eq(&config, &client_config()), "built once");
    }

    #[test]
    fn a_bundle_is_read_only_if_it_holds_certificates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(read_pem_bundle(dir.join("src/adapters/aws-roots.pem").as_os_str()).is_ok());
        assert!(read_pem_bundle(dir.join("Cargo.toml").as_os_str()).is_err());
        assert!(read_pem_bundle(dir.join("no-such-bundle.pem").as_os_str()).is_err());
    }
}
