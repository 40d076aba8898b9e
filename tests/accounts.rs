//! Accounts through the API: a user's own password and tokens, and an
//! admin's management of users — the last-admin rule, and removing a user
//! without losing (or stranding) their work.

mod common;

use axum::http::{Method, StatusCode};
use berth::domain::Role;
use berth::service::NewUser;
use common::TestEnv;
use serde_json::{json, Value};
use uuid::Uuid;

fn assert_error(status: StatusCode, v: &Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["success"], false, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "message {msg:?} should mention {needle:?}"
    );
}

/// A user with a known password; returns (id, email).
async fn account(env: &TestEnv, role: Role, password: &str) -> (Uuid, String) {
    let email = format!("{}@test.example", Uuid::new_v4().simple());
    let u = env
        .accounts
        .add_user(NewUser {
            email: email.clone(),
            password: password.into(),
            role,
        })
        .await
        .expect("add user");
    (u.id, email)
}

/// Logs in; returns the session token, or the failed status.
async fn login(env: &TestEnv, email: &str, password: &str) -> Result<String, StatusCode> {
    let (s, v) = env
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await;
    if s == StatusCode::OK {
        Ok(v["data"]["accessToken"].as_str().unwrap().to_string())
    } else {
        Err(s)
    }
}

async fn me(env: &TestEnv, token: &str) -> StatusCode {
    env.get("/api/auth/me", token).await.0
}

async fn delete(env: &TestEnv, path: &str, token: &str) -> (StatusCode, Value) {
    env.call(Method::DELETE, path, Some(token), None).await
}

async fn patch(env: &TestEnv, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    env.call(Method::PATCH, path, Some(token), Some(body)).await
}

#[tokio::test]
async fn changing_your_password_ends_your_other_sessions_but_not_api_tokens() {
    let env = TestEnv::engineless().await;
    let (_, email) = account(&env, Role::Member, "old-password").await;
    let here = login(&env, &email, "old-password").await.unwrap();
    let elsewhere = login(&env, &email, "old-password").await.unwrap();
    let script = env
        .accounts
        .create_api_token(&email, "script")
        .await
        .unwrap();

    let (s, v) = env
        .post(
            "/api/auth/password",
            &here,
            json!({ "currentPassword": "not-it-at-all", "newPassword": "new-password" }),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "currentPassword");
    let (s, v) = env
        .post(
            "/api/auth/password",
            &here,
            json!({ "currentPassword": "old-password", "newPassword": "short" }),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "at least 8 characters");
    let (s, v) = env
        .post(
            "/api/auth/password",
            &here,
            json!({ "currentPassword": "old-password", "newPassword": "old-password" }),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "differ");
    // Nothing refused changed anything.
    assert_eq!(me(&env, &elsewhere).await, StatusCode::OK);

    let (s, v) = env
        .post(
            "/api/auth/password",
            &here,
            json!({ "currentPassword": "old-password", "newPassword": "new-password" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["endedSessions"], 1, "{v}");
    assert_eq!(
        me(&env, &here).await,
        StatusCode::OK,
        "the asking session stays"
    );
    assert_eq!(me(&env, &elsewhere).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&env, &script).await, StatusCode::OK, "API tokens stay");
    assert_eq!(
        login(&env, &email, "old-password").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert!(login(&env, &email, "new-password").await.is_ok());
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_made_once_and_revoked_by_their_owner_only() {
    let env = TestEnv::engineless().await;
    let (_, email) = account(&env, Role::Member, "password123").await;
    let session = login(&env, &email, "password123").await.unwrap();
    let other = env.member().await;

    let (s, v) = env.get("/api/auth/tokens", &session).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["kind"], "session");
    assert_eq!(list[0]["current"], true);
    assert!(list[0]["expiresAt"].is_string(), "{v}");
    assert!(
        list[0]["lastUsedAt"].is_string(),
        "used by this very request"
    );
    assert!(list[0].get("token").is_none() && !v.to_string().contains(&session));

    let (s, v) = env
        .post("/api/auth/tokens", &session, json!({ "name": "  " }))
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "name");
    let (s, v) = env
        .post("/api/auth/tokens", &session, json!({ "name": "ci deploy" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let made = v["data"]["token"].as_str().unwrap().to_string();
    let made_id = v["data"]["id"].as_str().unwrap().to_string();
    assert!(made.starts_with("berth_"), "{made}");
    assert_eq!(v["data"]["name"], "ci deploy");
    assert_eq!(me(&env, &made).await, StatusCode::OK);

    let (_, v) = env.get("/api/auth/tokens", &made).await;
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let api = list.iter().find(|t| t["id"] == made_id.as_str()).unwrap();
    assert_eq!(api["kind"], "api");
    assert_eq!(api["current"], true);
    assert!(
        api["expiresAt"].is_null(),
        "API tokens do not expire: {api}"
    );
    assert!(!v.to_string().contains(&made), "the secret is never listed");

    // Not the token in use; not someone else's (a 404, like any other
    // user's resource); then it goes.
    let (s, v) = delete(&env, &format!("/api/auth/tokens/{made_id}"), &made).await;
    assert_error(s, &v, StatusCode::CONFLICT, "logout");
    let (s, v) = delete(&env, &format!("/api/auth/tokens/{made_id}"), &other).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "no token");
    assert_eq!(me(&env, &made).await, StatusCode::OK);
    let (s, v) = delete(&env, &format!("/api/auth/tokens/{made_id}"), &session).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(me(&env, &made).await, StatusCode::UNAUTHORIZED);
    let (s, v) = delete(&env, &format!("/api/auth/tokens/{made_id}"), &session).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "no token");
}

#[tokio::test]
async fn admins_add_change_and_reset_users_and_members_cannot() {
    let env = TestEnv::engineless().await;
    let (admin_id, admin_email) = account(&env, Role::Admin, "admin-password").await;
    let admin = login(&env, &admin_email, "admin-password").await.unwrap();
    let member = env.member().await;

    for (method, path) in [
        (Method::GET, "/api/users".to_string()),
        (Method::POST, "/api/users".to_string()),
        (Method::GET, format!("/api/users/{admin_id}")),
        (Method::PATCH, format!("/api/users/{admin_id}")),
        (Method::DELETE, format!("/api/users/{admin_id}")),
    ] {
        let body = matches!(method, Method::POST | Method::PATCH)
            .then(|| json!({ "email": "x@y.z", "password": "password123", "role": "admin" }));
        let body = if method == Method::PATCH {
            Some(json!({ "role": "member" }))
        } else {
            body
        };
        let (s, v) = env.call(method.clone(), &path, Some(&member), body).await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "admin");
    }

    let (s, v) = env
        .post(
            "/api/users",
            &admin,
            json!({ "email": "  New.Person@Example.COM ", "password": "first-password" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["email"], "new.person@example.com");
    assert_eq!(v["data"]["role"], "member", "member unless given");
    assert_eq!(v["data"]["projects"], 0);
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let theirs = login(&env, "new.person@example.com", "first-password")
        .await
        .unwrap();

    for (body, status, needle) in [
        (
            json!({ "email": "new.person@example.com", "password": "password123" }),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            json!({ "email": "nope", "password": "password123" }),
            StatusCode::BAD_REQUEST,
            "not an email",
        ),
        (
            json!({ "email": "a@b.c", "password": "short" }),
            StatusCode::BAD_REQUEST,
            "at least 8",
        ),
        (
            json!({ "email": "a@b.c", "password": "password123", "role": "root" }),
            StatusCode::BAD_REQUEST,
            "role",
        ),
    ] {
        let (s, v) = env.post("/api/users", &admin, body).await;
        assert_error(s, &v, status, needle);
    }

    let (s, v) = env.get("/api/users", &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let emails: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"new.person@example.com") && emails.contains(&admin_email.as_str()));

    let path = format!("/api/users/{id}");
    let (s, v) = patch(&env, &path, &admin, json!({})).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "nothing to change");
    // A bad password in a request that also changes the role changes
    // nothing at all.
    let (s, v) = patch(
        &env,
        &path,
        &admin,
        json!({ "role": "admin", "password": "short" }),
    )
    .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "at least 8");
    assert_eq!(env.get(&path, &admin).await.1["data"]["role"], "member");

    let (s, v) = patch(&env, &path, &admin, json!({ "role": "admin" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["role"], "admin");
    assert_eq!(
        env.get("/api/users", &theirs).await.0,
        StatusCode::OK,
        "the new role holds for the sessions they already have"
    );

    let (s, v) = patch(&env, &path, &admin, json!({ "password": "reset-by-admin" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("1 login session"),
        "{v}"
    );
    assert_eq!(me(&env, &theirs).await, StatusCode::UNAUTHORIZED);
    assert!(login(&env, "new.person@example.com", "reset-by-admin")
        .await
        .is_ok());

    let (s, v) = env
        .get(&format!("/api/users/{}", Uuid::new_v4()), &admin)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "no user");
}

#[tokio::test]
async fn the_last_admin_stays_and_nobody_removes_themselves() {
    let env = TestEnv::engineless().await;
    let (a_id, a_email) = account(&env, Role::Admin, "admin-password").await;
    let a = login(&env, &a_email, "admin-password").await.unwrap();
    let (b_id, _) = account(&env, Role::Member, "member-password").await;

    let (s, v) = patch(
        &env,
        &format!("/api/users/{a_id}"),
        &a,
        json!({ "role": "member" }),
    )
    .await;
    assert_error(s, &v, StatusCode::CONFLICT, "only admin");
    let (s, v) = delete(&env, &format!("/api/users/{a_id}"), &a).await;
    assert_error(s, &v, StatusCode::CONFLICT, "your own account");

    // With a second admin, the first may step down.
    let (s, v) = patch(
        &env,
        &format!("/api/users/{b_id}"),
        &a,
        json!({ "role": "admin" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = patch(
        &env,
        &format!("/api/users/{a_id}"),
        &a,
        json!({ "role": "member" }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["role"], "member");
    // ...and is then a member like any other.
    let (s, v) = env.get("/api/users", &a).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "admin");
}

#[tokio::test]
async fn removing_a_user_hands_their_projects_workspaces_and_backups_to_the_heir() {
    let env = TestEnv::new().await; // projects have volumes: it needs the engine
    let (_, admin_email) = account(&env, Role::Admin, "admin-password").await;
    let admin = login(&env, &admin_email, "admin-password").await.unwrap();
    let (leaver_id, leaver) = env.user(Role::Member).await;
    let (heir_id, heir) = env.user(Role::Member).await;
    let (ws, pid) = env.workspace(&leaver).await;
    let (s, v) = env
        .post(
            &format!("/api/workspaces/{ws}/set-default"),
            &leaver,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/backup"),
            &leaver,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let backup = v["data"]["id"].as_str().unwrap().to_string();

    let (s, v) = env.get(&format!("/api/users/{leaver_id}"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["data"]["projects"].clone(),
            v["data"]["workspaces"].clone()
        ),
        (json!(1), json!(1))
    );

    let path = format!("/api/users/{leaver_id}");
    let (s, v) = delete(&env, &path, &admin).await;
    assert_error(
        s,
        &v,
        StatusCode::CONFLICT,
        "owns 1 project and 1 workspace",
    );
    let (s, v) = delete(
        &env,
        &format!("{path}?transferTo={}", Uuid::new_v4()),
        &admin,
    )
    .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "transferTo");
    let (s, v) = delete(&env, &format!("{path}?transferTo={leaver_id}"), &admin).await;
    assert_error(s, &v, StatusCode::CONFLICT, "another user");
    assert_eq!(
        me(&env, &leaver).await,
        StatusCode::OK,
        "refusals change nothing"
    );

    let (s, v) = delete(&env, &format!("{path}?transferTo={heir_id}"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["transferredTo"], heir_id.to_string());
    assert_eq!(
        me(&env, &leaver).await,
        StatusCode::UNAUTHORIZED,
        "tokens went"
    );
    let (s, _) = env.get(&path, &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The heir has it all, and their own default is not overridden.
    let (s, v) = env.get(&format!("/api/projects/{pid}"), &heir).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env.get(&format!("/api/workspaces/{ws}"), &heir).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["isDefault"], false, "{v}");
    let (s, v) = env.get(&format!("/api/backups/{backup}"), &heir).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env.get(&format!("/api/users/{heir_id}"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["projects"], 1);
    assert_eq!(v["data"]["workspaces"], 1);

    // Someone who owns nothing goes without an heir.
    let (idle_id, _) = env.user(Role::Member).await;
    let (s, v) = delete(&env, &format!("/api/users/{idle_id}"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["data"]["transferredTo"].is_null(), "{v}");
}
