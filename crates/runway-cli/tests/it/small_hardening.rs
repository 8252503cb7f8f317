//! Issue 7's smaller ones, end to end over the API: the last admin token
//! stays, and versions equal under semver precedence are one version.

use runway_api::v1::{CreateToken, DeploymentStatus, Scope};

use crate::support::{TestEnv, package, repackage, with_version};

#[tokio::test]
async fn the_last_admin_token_cannot_be_revoked() {
    let env = TestEnv::start().await;
    let tokens = env.client.tokens().await.unwrap();
    let admin = tokens
        .iter()
        .find(|t| t.scope == Scope::Admin && t.revoked_at_ms.is_none())
        .expect("the first admin token");
    let error = env
        .client
        .revoke_token(&admin.id.to_string())
        .await
        .expect_err("the last admin token is refused");
    assert_eq!(error.status(), Some(409), "{error}");
    assert!(
        error
            .to_string()
            .contains("create another admin token first"),
        "{error}"
    );
    // It still works.
    env.client.tokens().await.unwrap();

    // With a second admin token, the first one can go (and the second then stays).
    let second = env
        .client
        .create_token(&CreateToken {
            name: "second-admin".into(),
            scope: Scope::Admin,
        })
        .await
        .unwrap();
    env.client
        .revoke_token(&admin.id.to_string())
        .await
        .unwrap();
    let client = runway_client::Client::new(&env.url, Some(second.token.clone())).unwrap();
    let error = client.revoke_token("second-admin").await.unwrap_err();
    assert_eq!(error.status(), Some(409), "{error}");
}

#[tokio::test]
async fn a_version_differing_only_in_build_metadata_is_the_same_version() {
    let env = TestEnv::start().await;
    let hello = package("examples/hello");
    let a = repackage(&hello, |m| with_version(m, "1.0.0+a"));
    let b = repackage(&hello, |m| with_version(m, "1.0.0+b"));
    assert_ne!(a.digest, b.digest);
    env.publish(&a).await;

    let error = env
        .client
        .publish(b.to_bytes(), true, None)
        .await
        .expect_err("1.0.0+b is 1.0.0+a with other bytes");
    assert_eq!(error.status(), Some(409), "{error}");
    assert!(error.to_string().contains("same version"), "{error}");
    let versions = env.client.versions("hello").await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");

    // `1.0.0` names the published 1.0.0+a.
    let deployment = env.client.deploy("hello", "1.0.0").await.unwrap();
    assert_eq!(
        deployment.status,
        DeploymentStatus::Succeeded,
        "{:?}",
        deployment.error
    );
    assert_eq!(deployment.version, "1.0.0+a");
    let (status, _) = env.get_text("/hello/").await;
    assert_eq!(status, 200);
}
