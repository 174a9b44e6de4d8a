//! Client quotas (KIP-13, KIP-55, KIP-124, KIP-546) as cluster metadata: which entity — a user,
//! a client id, or both; each named or the default — has which quota values. Pure: the records
//! carry them, the image holds them, `resolve` answers which quota applies to a request and
//! under which name its usage is counted, as Kafka's `ClientQuotaManager` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// Quota values to set (Some) or remove (None), by key.
pub type QuotaOps = Vec<(String, Option<f64>)>;

/// A user or client id in a quota entity: a name, or the default for that type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    fn from_wire(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()))
    }

    /// The wire form: None is the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// What a quota is set on: a user, a client id, or a user's client id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    /// From the wire's (entity type, name or None for the default) pairs.
    pub fn from_components<'a>(
        components: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, String> {
        let mut entity = QuotaEntity {
            user: None,
            client_id: None,
        };
        for (entity_type, name) in components {
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                other => return Err(format!("unsupported quota entity type {other:?}")),
            };
            if slot.is_some() {
                return Err(format!("entity type {entity_type:?} given twice"));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err("a quota entity needs a user or a client id".into());
        }
        Ok(entity)
    }

    /// The wire's (entity type, name) pairs.
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut out = Vec::new();
        if let Some(user) = &self.user {
            out.push((USER, user.as_wire()));
        }
        if let Some(client_id) = &self.client_id {
            out.push((CLIENT_ID, client_id.as_wire()));
        }
        out
    }

    fn part(&self, entity_type: &str) -> Option<&EntityName> {
        match entity_type {
            USER => self.user.as_ref(),
            CLIENT_ID => self.client_id.as_ref(),
            _ => None,
        }
    }
}

/// A DescribeClientQuotas filter component.
pub enum Match<'a> {
    Exact(&'a str),
    Default,
    /// Any name, the default included.
    Any,
}

/// Whether `entity` passes DescribeClientQuotas' filter: every component matches, and when
/// `strict`, the entity has no other parts.
pub fn matches(entity: &QuotaEntity, filter: &[(&str, Match<'_>)], strict: bool) -> bool {
    let all_match = filter
        .iter()
        .all(|(entity_type, m)| match (entity.part(entity_type), m) {
            (Some(EntityName::Named(n)), Match::Exact(want)) => n == want,
            (Some(EntityName::Default), Match::Default) => true,
            (Some(_), Match::Any) => true,
            _ => false,
        });
    all_match && (!strict || entity.components().len() == filter.len())
}

/// Checks a quota key and value as Kafka does: known key, positive; byte rates whole numbers.
pub fn validate(key: &str, value: f64) -> Result<(), String> {
    match key {
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE if value.fract() != 0.0 => {
            Err(format!("{key} must be a whole number of bytes per second"))
        }
        PRODUCER_BYTE_RATE | CONSUMER_BYTE_RATE | REQUEST_PERCENTAGE => {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(format!("{key} must be positive"))
            }
        }
        other => Err(format!("unsupported quota key {other:?}")),
    }
}

/// Every entity's quota values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<(QuotaEntity, BTreeMap<String, f64>)>")]
#[serde(into = "Vec<(QuotaEntity, BTreeMap<String, f64>)>")]
pub struct ClientQuotas(BTreeMap<QuotaEntity, BTreeMap<String, f64>>);

// JSON (snapshots) has only string map keys: entities are stored as a list of pairs.
impl From<Vec<(QuotaEntity, BTreeMap<String, f64>)>> for ClientQuotas {
    fn from(entries: Vec<(QuotaEntity, BTreeMap<String, f64>)>) -> Self {
        ClientQuotas(entries.into_iter().collect())
    }
}

impl From<ClientQuotas> for Vec<(QuotaEntity, BTreeMap<String, f64>)> {
    fn from(quotas: ClientQuotas) -> Self {
        quotas.0.into_iter().collect()
    }
}

impl ClientQuotas {
    /// Sets (or with None removes) one value.
    pub fn set(&mut self, entity: &QuotaEntity, key: &str, value: Option<f64>) {
        match value {
            Some(v) => {
                self.0
                    .entry(entity.clone())
                    .or_default()
                    .insert(key.to_string(), v);
            }
            None => {
                if let Some(values) = self.0.get_mut(entity) {
                    values.remove(key);
                    if values.is_empty() {
                        self.0.remove(entity);
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, f64>)> {
        self.0.iter()
    }

    /// The quota `key` for a request of `user` with `client_id`, and the (user, client id) its
    /// usage is counted under: the most specific entity that sets `key`, in Kafka's order
    /// (KIP-55): user+client, user+default client, user, default user+client, default
    /// user+default client, default user, client, default client. A part the entity has is
    /// counted under the request's own name (a default quota applies to each name apart); a
    /// part it lacks is counted as "" (shared by all).
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(f64, String, String)> {
        use EntityName::{Default, Named};
        let u = || Some(Named(user.to_string()));
        let c = || Some(Named(client_id.to_string()));
        let order = [
            (u(), c()),
            (u(), Some(Default)),
            (u(), None),
            (Some(Default), c()),
            (Some(Default), Some(Default)),
            (Some(Default), None),
            (None, c()),
            (None, Some(Default)),
        ];
        order.into_iter().find_map(|(user_part, client_part)| {
            let counted_user = if user_part.is_some() { user } else { "" };
            let counted_client = if client_part.is_some() { client_id } else { "" };
            let entity = QuotaEntity {
                user: user_part,
                client_id: client_part,
            };
            let value = *self.0.get(&entity)?.get(key)?;
            Some((value, counted_user.to_string(), counted_client.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(components: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::from_components(components.iter().copied()).unwrap()
    }

    #[test]
    fn the_most_specific_entity_wins_and_defaults_count_each_name_apart() {
        let mut quotas = ClientQuotas::default();
        quotas.set(
            &entity(&[(CLIENT_ID, None)]),
            PRODUCER_BYTE_RATE,
            Some(100.0),
        );
        quotas.set(
            &entity(&[(CLIENT_ID, Some("a"))]),
            PRODUCER_BYTE_RATE,
            Some(200.0),
        );
        quotas.set(
            &entity(&[(USER, Some("u")), (CLIENT_ID, Some("a"))]),
            PRODUCER_BYTE_RATE,
            Some(300.0),
        );
        let r = |user, client| quotas.resolve(PRODUCER_BYTE_RATE, user, client);
        assert_eq!(r("u", "a"), Some((300.0, "u".into(), "a".into())));
        assert_eq!(r("v", "a"), Some((200.0, "".into(), "a".into())));
        assert_eq!(r("v", "b"), Some((100.0, "".into(), "b".into())));
        assert_eq!(quotas.resolve(CONSUMER_BYTE_RATE, "u", "a"), None);
        quotas.set(&entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, None);
        assert_eq!(quotas.resolve(PRODUCER_BYTE_RATE, "v", "b"), None);
    }

    #[test]
    fn entities_and_values_are_checked() {
        assert!(QuotaEntity::from_components([("ip", Some("1.2.3.4"))]).is_err());
        assert!(QuotaEntity::from_components([(USER, None), (USER, Some("x"))]).is_err());
        assert!(QuotaEntity::from_components([]).is_err());
        assert!(validate(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(validate(PRODUCER_BYTE_RATE, 1.5).is_err());
        assert!(validate(REQUEST_PERCENTAGE, 0.0).is_err());
        assert!(validate(REQUEST_PERCENTAGE, 12.5).is_ok());
        assert!(validate("controller_mutation_rate", 1.0).is_err());
    }

    #[test]
    fn describe_filters_match_exact_default_any_and_strict() {
        let both = entity(&[(USER, Some("u")), (CLIENT_ID, None)]);
        assert!(matches(&both, &[(USER, Match::Exact("u"))], false));
        assert!(!matches(&both, &[(USER, Match::Exact("u"))], true));
        assert!(matches(
            &both,
            &[(USER, Match::Any), (CLIENT_ID, Match::Default)],
            true
        ));
        assert!(!matches(&both, &[(CLIENT_ID, Match::Exact("a"))], false));
    }

    #[test]
    fn quotas_round_trip_through_json() {
        let mut quotas = ClientQuotas::default();
        quotas.set(&entity(&[(USER, None)]), REQUEST_PERCENTAGE, Some(50.0));
        let json = serde_json::to_string(&quotas).unwrap();
        assert_eq!(serde_json::from_str::<ClientQuotas>(&json).unwrap(), quotas);
    }
}
