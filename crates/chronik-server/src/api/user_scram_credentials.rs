//! DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), KIP-554: users' SCRAM
//! credentials are cluster metadata (`security::scram`), changed through the controller.
//! Describing needs DESCRIBE on the cluster, altering ALTER; results are per user, and a user
//! with any refused change gets none of its changes, as in Kafka.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::metadata::MetadataView;
use crate::security::scram::{check_iterations, ScramCredential, ScramMechanism};
use crate::security::{AclOperation, Authorizer, Session};

pub fn describe(
    metadata: &MetadataView,
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if !authorizer.cluster(session, AclOperation::Describe) {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("not authorized to describe users")));
    }
    let image = metadata.image();
    // Null or empty: every user with a credential.
    let asked: Vec<String> = match request.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => image.scram_credentials.keys().cloned().collect(),
    };
    let mut seen = BTreeMap::new();
    for user in &asked {
        *seen.entry(user.as_str()).or_insert(0) += 1;
    }
    let results = asked
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|user| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            let refusal = if seen[user.as_str()] > 1 {
                Some((
                    ResponseError::DuplicateResource,
                    "Cannot describe SCRAM credentials for the same user twice in a single request",
                ))
            } else if !image.scram_credentials.contains_key(user) {
                Some((
                    ResponseError::ResourceNotFound,
                    "Attempt to describe a user credential that does not exist",
                ))
            } else {
                None
            };
            match refusal {
                Some((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
                None => result.with_credential_infos(
                    image.scram_credentials[user]
                        .values()
                        .map(|c| {
                            CredentialInfo::default()
                                .with_mechanism(c.mechanism.wire())
                                .with_iterations(c.iterations)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    response.with_results(results)
}

/// `user`'s changes, with the mechanism a deletion or upsertion names when it may change it:
/// a known mechanism, not named for this user before in the request (else the user is refused).
fn named_change<'a>(
    users: &'a mut BTreeMap<String, UserChanges>,
    named: &mut BTreeSet<(String, ScramMechanism)>,
    user: &str,
    wire_mechanism: i8,
) -> (&'a mut UserChanges, Option<ScramMechanism>) {
    let changes = users.entry(user.to_string()).or_default();
    let Some(mechanism) = ScramMechanism::from_wire(wire_mechanism) else {
        let message = "Unknown SCRAM mechanism".to_string();
        refuse(changes, ResponseError::UnsupportedSaslMechanism, message);
        return (changes, None);
    };
    if !named.insert((user.to_string(), mechanism)) {
        let message = "A user credential cannot be altered twice in the same request";
        refuse(changes, ResponseError::DuplicateResource, message.into());
        return (changes, None);
    }
    (changes, Some(mechanism))
}

/// Keeps the first reason a user's changes are refused.
fn refuse(changes: &mut UserChanges, error: ResponseError, message: String) {
    changes.refused.get_or_insert((error, message));
}

/// One user's changes, or why they are refused.
#[derive(Default)]
struct UserChanges {
    upsertions: Vec<ScramCredential>,
    deletions: Vec<ScramMechanism>,
    refused: Option<(ResponseError, String)>,
}

pub async fn alter(
    metadata: &MetadataView,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let allowed = authorizer.cluster(session, AclOperation::Alter);
    let image = metadata.image();
    let mut users: BTreeMap<String, UserChanges> = BTreeMap::new();
    // (user, mechanism) pairs already named, deletions and upsertions together.
    let mut named = BTreeSet::new();
    for d in &request.deletions {
        let (changes, Some(mechanism)) = named_change(&mut users, &mut named, &d.name, d.mechanism)
        else {
            continue;
        };
        if !image
            .scram_credentials
            .get(d.name.as_str())
            .is_some_and(|c| c.contains_key(&mechanism))
        {
            let message = "Attempt to delete a user credential that does not exist";
            refuse(changes, ResponseError::ResourceNotFound, message.into());
        }
        changes.deletions.push(mechanism);
    }
    for u in &request.upsertions {
        let (changes, Some(mechanism)) = named_change(&mut users, &mut named, &u.name, u.mechanism)
        else {
            continue;
        };
        if let Err(message) = check_iterations(u.iterations) {
            refuse(changes, ResponseError::UnacceptableCredential, message);
        } else if u.salt.is_empty() || u.salted_password.is_empty() {
            let message = "Salt and salted password must not be empty".to_string();
            refuse(changes, ResponseError::UnacceptableCredential, message);
        }
        changes
            .upsertions
            .push(ScramCredential::from_salted_password(
                mechanism,
                u.salt.to_vec(),
                &u.salted_password,
                u.iterations,
            ));
    }
    for (user, changes) in users.iter_mut() {
        if user.is_empty() {
            let message = "Username must not be empty".to_string();
            refuse(changes, ResponseError::UnacceptableCredential, message);
        }
        if !allowed {
            changes.refused = Some((
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to alter users".into(),
            ));
        }
    }
    let mut upsertions = Vec::new();
    let mut deletions = Vec::new();
    for (user, changes) in users.iter().filter(|(_, c)| c.refused.is_none()) {
        upsertions.extend(changes.upsertions.iter().map(|c| (user.clone(), c.clone())));
        deletions.extend(changes.deletions.iter().map(|&m| (user.clone(), m)));
    }
    let outcome = if upsertions.is_empty() && deletions.is_empty() {
        Ok(())
    } else {
        controller
            .alter_scram_credentials(upsertions, deletions)
            .await
    };
    let results = users
        .into_iter()
        .map(|(user, changes)| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            let failure = match (changes.refused, &outcome) {
                (Some((error, message)), _) => Some((error.code(), message)),
                (None, Err(e)) => Some((e.code, e.message.clone())),
                (None, Ok(())) => None,
            };
            match failure {
                Some((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
                None => result,
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
