//! TLS for SSL and SASL_SSL listeners: rustls (ring provider; TLS 1.2 and 1.3) from PEM files,
//! re-read when they change, and the principal of a client certificate (mTLS).
//!
//! The files' modification times are checked when a connection arrives (and, for the replica
//! fetchers' outgoing connections, when one is opened): a changed file builds a new rustls
//! config for the connections that follow (those open keep theirs); a file that does not load
//! keeps the previous config and is reported once per change.
//!
//! A client certificate's principal is its subject as Kafka prints it (RFC 2253 order:
//! `CN=alice,OU=eng,O=acme`), mapped by `ssl_principal_mapping_rules` like Kafka's
//! `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries tried in order, the
//! first whose pattern matches the whole DN gives the name, `DEFAULT` gives the DN itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use parking_lot::Mutex;
use regex::Regex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// Whether TLS listeners ask for a client certificate (Kafka's ssl.client.auth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    /// Asked for and verified when given; a client without one connects as User:ANONYMOUS.
    Requested,
    /// A connection without a certificate signed by `ssl_ca_file` is refused.
    Required,
}

/// The files and rules, from the broker configuration.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// A value built from files and built again when one of them changes, checked at each use: a
/// file that does not load keeps the previous value and is reported once per change.
struct Reloading<T> {
    /// What the files are, for the log.
    what: &'static str,
    paths: Vec<PathBuf>,
    build: Box<dyn Fn() -> anyhow::Result<T> + Send + Sync>,
    current: Mutex<(Vec<Option<SystemTime>>, T)>,
}

impl<T: Clone> Reloading<T> {
    /// Builds the value now: a broker does not start with TLS files it cannot use.
    fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        build: impl Fn() -> anyhow::Result<T> + Send + Sync + 'static,
    ) -> anyhow::Result<Reloading<T>> {
        let stamps = stamps(&paths);
        let value = build()?;
        Ok(Reloading {
            what,
            paths,
            build: Box::new(build),
            current: Mutex::new((stamps, value)),
        })
    }

    /// The value, built again first if a file changed since the last call.
    fn get(&self) -> T {
        let stamps = stamps(&self.paths);
        let mut current = self.current.lock();
        if stamps != current.0 {
            // Remembered either way: a broken file is reported once, not per connection.
            current.0 = stamps;
            match (self.build)() {
                Ok(value) => {
                    current.1 = value;
                    info!(files = self.what, "TLS files changed: reloaded");
                }
                Err(e) => {
                    warn!(files = self.what, error = %format!("{e:#}"), "TLS files changed but do not load; keeping the previous ones")
                }
            }
        }
        current.1.clone()
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Builds TLS acceptors from the current files.
pub struct TlsSource {
    rules: PrincipalRules,
    acceptor: Reloading<TlsAcceptor>,
}

impl TlsSource {
    /// Loads the files now: a broker does not start with TLS files it cannot use.
    pub fn new(files: TlsFiles, rules: &str) -> anyhow::Result<TlsSource> {
        let rules = PrincipalRules::parse(rules)?;
        let paths = [
            Some(&files.certificate),
            Some(&files.key),
            files.ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        let acceptor = Reloading::new("listener certificate", paths, move || {
            Ok(TlsAcceptor::from(Arc::new(server_config(&files)?)))
        })?;
        Ok(TlsSource { rules, acceptor })
    }

    /// The acceptor for a new connection, rebuilt first if a file changed since.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.get()
    }

    /// The principal of a verified client certificate chain (its first certificate).
    pub fn principal(&self, chain: &[CertificateDer<'_>]) -> Option<String> {
        let dn = subject_dn(chain.first()?)?;
        Some(format!("User:{}", self.rules.apply(&dn)))
    }
}

/// What this broker's replica fetchers use on a TLS inter-broker listener: the other brokers
/// are verified against `ca`, and this broker shows its own certificate (for mTLS). Rebuilt
/// when a file changes, as the listeners' are, so a rotated certificate or CA reaches the
/// connections the fetchers open next without a restart.
pub struct ClientTlsSource(Reloading<Arc<rustls::ClientConfig>>);

impl ClientTlsSource {
    /// Loads the files now: a broker does not start with TLS files it cannot use.
    pub fn new(certificate: &Path, key: &Path, ca: &Path) -> anyhow::Result<ClientTlsSource> {
        let (certificate, key, ca) = (
            certificate.to_path_buf(),
            key.to_path_buf(),
            ca.to_path_buf(),
        );
        let paths = vec![certificate.clone(), key.clone(), ca.clone()];
        let config = Reloading::new("inter-broker client certificate", paths, move || {
            client_config(&certificate, &key, &ca)
        })?;
        Ok(ClientTlsSource(config))
    }

    /// The config for a new connection, rebuilt first if a file changed since.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.0.get()
    }
}

/// ring, to avoid aws-lc's C build; rustls deprecates it only for its lack of post-quantum
/// key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let certs = read_certificates(&files.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading a private key from {}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?;
    let builder = match (files.client_auth, &files.ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => bail!("ssl_client_auth needs ssl_ca_file"),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("a CA certificate of {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().context("client verifier")?)
        }
    };
    builder
        .with_single_cert(certs, key)
        .context("the certificate does not go with the key")
}

fn client_config(
    certificate: &Path,
    key: &Path,
    ca: &Path,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(ca)? {
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate of {}", ca.display()))?;
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading a private key from {}", key.display()))?;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(read_certificates(certificate)?, key)
        .map(Arc::new)
        .context("the certificate does not go with the key")
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// The subject as RFC 2253 prints it: the last RDN first, `+` within an RDN, `,` between.
fn subject_dn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = attr.as_str().unwrap_or_default();
                    format!("{key}={}", escape_dn_value(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// RFC 2253 escaping of an attribute value.
fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.len() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Kafka's `ssl.principal.mapping.rules`, in a simple form.
#[derive(Debug)]
struct PrincipalRules(Vec<Rule>);

#[derive(Debug)]
enum Rule {
    Default,
    Map {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl PrincipalRules {
    fn parse(text: &str) -> anyhow::Result<PrincipalRules> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .with_context(|| format!("ssl_principal_mapping_rules: {rest:?}"))?;
                let (replacement, after) = until_slash(after)
                    .with_context(|| format!("ssl_principal_mapping_rules: {rest:?}"))?;
                let case = after.chars().next().filter(|c| matches!(c, 'L' | 'U'));
                rest = &after[case.map_or(0, |_| 1)..];
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .with_context(|| format!("ssl_principal_mapping_rules: pattern {pattern:?}"))?;
                rules.push(Rule::Map {
                    pattern,
                    replacement,
                    case,
                });
            } else {
                bail!("ssl_principal_mapping_rules: {rest:?} is neither RULE:... nor DEFAULT");
            }
            rest = rest.trim_start().trim_start_matches(',').trim_start();
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(PrincipalRules(rules))
    }

    /// The short name for `dn`: the first rule that matches, else the DN.
    fn apply(&self, dn: &str) -> String {
        for rule in &self.0 {
            match rule {
                Rule::Default => return dn.to_string(),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => {
                    let Some(captures) = pattern.captures(dn) else {
                        continue;
                    };
                    let mut name = String::new();
                    captures.expand(replacement, &mut name);
                    return match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    };
                }
            }
        }
        dn.to_string()
    }
}

/// Text up to the next unescaped `/` (a `\/` stands for `/`), and what follows it.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if text[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules_as_kafka_writes_them() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=(.*?),.*$/$1/,DEFAULT",
        )
        .unwrap();
        assert_eq!(rules.apply("CN=Svc,OU=ServiceUsers,O=acme"), "svc");
        assert_eq!(rules.apply("CN=alice,OU=eng,O=acme"), "alice");
        assert_eq!(rules.apply("O=acme"), "O=acme");
        assert_eq!(
            PrincipalRules::parse("DEFAULT").unwrap().apply("CN=a,O=b"),
            "CN=a,O=b"
        );
        assert_eq!(PrincipalRules::parse("").unwrap().apply("CN=a"), "CN=a");
        assert_eq!(
            PrincipalRules::parse("RULE:^CN=(.*)$/x\\/$1/U")
                .unwrap()
                .apply("CN=a"),
            "X/A"
        );
        for bad in ["RULE:^CN=(.*$/$1/", "RULE:x", "OTHER"] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificate_subject_prints_as_kafka_prints_it() {
        // Outermost first in the certificate; printed last.
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        assert_eq!(subject_dn(&der).unwrap(), "CN=alice,O=acme");
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            certificate: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            ca: None,
            client_auth: ClientAuth::None,
        };
        std::fs::write(&files.certificate, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let source = TlsSource::new(files, "RULE:^CN=(.*?),.*$/$1/,DEFAULT").unwrap();
        assert_eq!(source.principal(&[der]).as_deref(), Some("User:alice"));
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn_value(" x "), "\\ x\\ ");
    }
}
