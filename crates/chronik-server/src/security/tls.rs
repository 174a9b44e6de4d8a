//! TLS for SSL and SASL_SSL listeners: rustls (ring provider; TLS 1.2 and 1.3) from PEM files,
//! re-read when they change, and the principal of a client certificate (mTLS).
//!
//! The files' modification times are checked when a connection arrives: a changed file builds a
//! new rustls config for the connections that follow (those open keep theirs); a file that does
//! not load keeps the previous config and is reported once per change.
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

/// Builds TLS acceptors from the current files.
pub struct TlsSource {
    files: TlsFiles,
    rules: PrincipalRules,
    current: Mutex<Loaded>,
}

struct Loaded {
    stamps: Vec<Option<SystemTime>>,
    acceptor: TlsAcceptor,
}

impl TlsSource {
    /// Loads the files now: a broker does not start with TLS files it cannot use.
    pub fn new(files: TlsFiles, rules: &str) -> anyhow::Result<TlsSource> {
        let rules = PrincipalRules::parse(rules)?;
        let stamps = stamps(&files);
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&files)?));
        Ok(TlsSource {
            files,
            rules,
            current: Mutex::new(Loaded { stamps, acceptor }),
        })
    }

    /// The acceptor for a new connection, rebuilt first if a file changed since.
    pub fn acceptor(&self) -> TlsAcceptor {
        let stamps = stamps(&self.files);
        let mut current = self.current.lock();
        if stamps != current.stamps {
            // Remembered either way: a broken file is reported once, not per connection.
            current.stamps = stamps;
            match server_config(&self.files) {
                Ok(config) => {
                    current.acceptor = TlsAcceptor::from(Arc::new(config));
                    info!("TLS certificate files changed: reloaded");
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "TLS files changed but do not load; keeping the previous ones")
                }
            }
        }
        current.acceptor.clone()
    }

    /// The principal of a verified client certificate chain (its first certificate).
    pub fn principal(&self, chain: &[CertificateDer<'_>]) -> Option<String> {
        let dn = subject_dn(chain.first()?)?;
        Some(format!("User:{}", self.rules.apply(&dn)))
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.certificate),
        Some(&files.key),
        files.ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
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

/// What this broker's replica fetchers use on a TLS inter-broker listener: the other brokers
/// are verified against `ca`, and this broker shows its own certificate (for mTLS). Read once,
/// at start.
pub fn client_config(
    certificate: &Path,
    key: &Path,
    ca: &Path,
) -> anyhow::Result<rustls::ClientConfig> {
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
        let files = TlsFiles {
            certificate: PathBuf::new(),
            key: PathBuf::new(),
            ca: None,
            client_auth: ClientAuth::None,
        };
        let source = TlsSource {
            files,
            rules: PrincipalRules::parse("RULE:^CN=(.*?),.*$/$1/,DEFAULT").unwrap(),
            current: Mutex::new(Loaded {
                stamps: Vec::new(),
                acceptor: TlsAcceptor::from(Arc::new(
                    ServerConfig::builder_with_provider(provider())
                        .with_safe_default_protocol_versions()
                        .unwrap()
                        .with_no_client_auth()
                        .with_single_cert(
                            vec![der.clone()],
                            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
                        )
                        .unwrap(),
                )),
            }),
        };
        assert_eq!(source.principal(&[der]).as_deref(), Some("User:alice"));
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn_value(" x "), "\\ x\\ ");
    }
}
