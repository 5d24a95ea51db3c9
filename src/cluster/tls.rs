//! TLS on the cluster link (`cluster.tls.cert`, `key`, `ca`): every node presents its
//! certificate and accepts only peers whose certificate the cluster's CA signed, both ways
//! (mutual TLS), on top of the cookie. Built from PEM files with aws-lc-rs, the provider the
//! rest of the binary uses.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    server::WebPkiClientVerifier,
};

use super::ClusterError;

/// Both halves of the node's TLS: what it accepts with and what it dials with.
#[derive(Clone)]
pub struct ClusterTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
}

fn bad(what: &str, path: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Tls(format!("{what} {path}: {e}"))
}

impl ClusterTls {
    /// Loads the node's certificate chain and key, and the CA its peers' certificates must
    /// chain to.
    pub fn load(cert: &str, key: &str, ca: &str) -> Result<Self, ClusterError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(Path::new(cert))
            .map_err(|e| bad("cluster.tls.cert", cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad("cluster.tls.cert", cert, e))?;
        if chain.is_empty() {
            return Err(bad("cluster.tls.cert", cert, "no certificate in the file"));
        }
        let key_der = PrivateKeyDer::from_pem_file(Path::new(key))
            .map_err(|e| bad("cluster.tls.key", key, e))?;
        let mut roots = RootCertStore::empty();
        for ca_cert in CertificateDer::pem_file_iter(Path::new(ca))
            .map_err(|e| bad("cluster.tls.ca", ca, e))?
        {
            let ca_cert = ca_cert.map_err(|e| bad("cluster.tls.ca", ca, e))?;
            roots
                .add(ca_cert)
                .map_err(|e| bad("cluster.tls.ca", ca, e))?;
        }
        if roots.is_empty() {
            return Err(bad("cluster.tls.ca", ca, "no certificate in the file"));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad("cluster.tls.ca", ca, e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key_der.clone_key())
            .map_err(|e| bad("cluster.tls.key", key, e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| bad("cluster.tls.key", key, e))?;
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        })
    }

    /// The name a peer at `address` (`host:port`) must carry in its certificate.
    pub fn server_name(address: &str) -> Option<ServerName<'static>> {
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_string()).ok()
    }
}
