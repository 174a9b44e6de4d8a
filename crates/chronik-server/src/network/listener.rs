//! Named listeners, as Kafka configures them: `listeners = "PLAINTEXT://127.0.0.1:9092,
//! SASL_SSL://0.0.0.0:9093"`, each name mapped to a security protocol (the four standard names
//! map to themselves; others through `listener_security_protocol_map`, e.g. `INTERNAL:PLAINTEXT`),
//! and each advertised to clients at its `advertised_listeners` address (default: where it binds).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// How a listener's connections are secured (Kafka's `security.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener of this broker, resolved from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    /// (host, port) clients of this listener are told to connect to.
    pub advertised: (String, i32),
}

/// A registered listener of a broker as the metadata keeps it: clients are answered with the
/// endpoints of the listener they connected on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// `NAME://host:port` entries of a comma-separated list, in order; names are upper-cased and
/// may appear once. An empty host means all interfaces, as in Kafka.
fn parse_list(setting: &str, list: &str) -> anyhow::Result<Vec<(String, String, u16)>> {
    let mut entries: Vec<(String, String, u16)> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = entry
            .split_once("://")
            .with_context(|| format!("{setting}: {entry:?} is not NAME://host:port"))?;
        let (host, port) = address
            .rsplit_once(':')
            .with_context(|| format!("{setting}: {entry:?} has no port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("{setting}: {entry:?} has a bad port"))?;
        let name = name.to_ascii_uppercase();
        if entries.iter().any(|(n, ..)| *n == name) {
            bail!("{setting}: listener {name} is named twice");
        }
        entries.push((name, host.trim_matches(['[', ']']).to_string(), port));
    }
    if entries.is_empty() {
        bail!("{setting} is empty");
    }
    Ok(entries)
}

/// `NAME:PROTOCOL,...` (Kafka's `listener.security.protocol.map`) on top of the standard names.
fn parse_protocol_map(map: Option<&str>) -> anyhow::Result<BTreeMap<String, SecurityProtocol>> {
    let mut protocols: BTreeMap<String, SecurityProtocol> =
        ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
            .into_iter()
            .filter_map(|n| Some((n.to_string(), SecurityProtocol::from_name(n)?)))
            .collect();
    for entry in map
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, protocol) = entry.split_once(':').with_context(|| {
            format!("listener_security_protocol_map: {entry:?} is not NAME:PROTOCOL")
        })?;
        let protocol = SecurityProtocol::from_name(protocol.trim()).with_context(|| {
            format!("listener_security_protocol_map: {entry:?}: unknown security protocol")
        })?;
        protocols.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(protocols)
}

/// The listeners of `listeners` with their protocols and advertised addresses.
pub fn resolve(
    listeners: &str,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
) -> anyhow::Result<Vec<ListenerConfig>> {
    let protocols = parse_protocol_map(protocol_map)?;
    let advertised = match advertised {
        Some(list) => parse_list("advertised_listeners", list)?,
        None => Vec::new(),
    };
    let mut resolved = Vec::new();
    for (name, host, port) in parse_list("listeners", listeners)? {
        let protocol = *protocols.get(&name).with_context(|| {
            format!("listener {name} has no security protocol (listener_security_protocol_map)")
        })?;
        let bind_host = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind = (bind_host, port)
            .to_socket_addrs()
            .with_context(|| format!("listener {name}: resolving {bind_host}"))?
            .next()
            .with_context(|| format!("listener {name}: {bind_host} resolves to nothing"))?;
        let advertised = match advertised.iter().find(|(n, ..)| *n == name) {
            Some((_, host, port)) => (host.clone(), *port as i32),
            None => (bind.ip().to_string(), port as i32),
        };
        resolved.push(ListenerConfig {
            name,
            protocol,
            bind,
            advertised,
        });
    }
    if let Some((name, ..)) = advertised
        .iter()
        .find(|(n, ..)| !resolved.iter().any(|l| l.name == *n))
    {
        bail!("advertised_listeners names {name}, which is not among listeners");
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_protocols_and_advertised_addresses() {
        let resolved = resolve(
            "PLAINTEXT://127.0.0.1:9092,sasl_ssl://:9093,INTERNAL://[::1]:9094",
            Some("SASL_SSL://broker.example:19093"),
            Some("INTERNAL:PLAINTEXT"),
        )
        .unwrap();
        let summary: Vec<_> = resolved
            .iter()
            .map(|l| {
                (
                    l.name.as_str(),
                    l.protocol,
                    l.bind.to_string(),
                    l.advertised.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "PLAINTEXT",
                    SecurityProtocol::Plaintext,
                    "127.0.0.1:9092".into(),
                    ("127.0.0.1".into(), 9092)
                ),
                (
                    "SASL_SSL",
                    SecurityProtocol::SaslSsl,
                    "0.0.0.0:9093".into(),
                    ("broker.example".into(), 19093)
                ),
                (
                    "INTERNAL",
                    SecurityProtocol::Plaintext,
                    "[::1]:9094".into(),
                    ("::1".into(), 9094)
                ),
            ]
        );
    }

    #[test]
    fn bad_listener_settings_are_refused() {
        for (listeners, advertised, map) in [
            ("", None, None),
            ("127.0.0.1:9092", None, None),
            ("PLAINTEXT://127.0.0.1", None, None),
            (
                "PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2",
                None,
                None,
            ),
            ("OTHER://127.0.0.1:1", None, None),
            ("OTHER://127.0.0.1:1", None, Some("OTHER:TLS")),
            ("PLAINTEXT://127.0.0.1:1", Some("SSL://h:2"), None),
        ] {
            assert!(
                resolve(listeners, advertised, map).is_err(),
                "{listeners} {advertised:?} {map:?}"
            );
        }
    }
}
