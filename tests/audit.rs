//! The audit log: every operation of the route table that changes state
//! is recorded (a test generated from the table itself, so a new route
//! without a record fails), with the actor and the outcome — done, refused
//! (with status and code) or failed; failed logins are recorded without
//! the password; an admin acting on a member's resource names its owner;
//! only admins read the log, by filters and pages; the CLI's admin
//! commands are recorded too; retention removes what is old.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth::domain::Role;
use common::TestEnv;
use serde_json::{json, Value};

/// The records of one action, newest first.
async fn records(env: &TestEnv, admin: &str, query: &str) -> Vec<Value> {
    let (s, v) = env.get(&format!("/api/audit?{query}"), admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_route_that_changes_state_is_recorded_with_its_actor_and_outcome() {
    let env = TestEnv::new().await;
    let (admin_id, email) = env.user_with_email(Role::Admin).await;
    let reader = env
        .accounts
        .create_api_token(&email, "reader")
        .await
        .unwrap();
    let ops: Vec<_> = berth::http::operations()
        .into_iter()
        .filter(|op| op.is_audited())
        .map(|op| {
            (
                op.id(),
                op.path(),
                op.methods().to_vec(),
                op.takes_json(),
                op.is_public(),
            )
        })
        .collect();
    assert!(ops.len() >= 40, "only {} audited operations", ops.len());
    for (id, path, methods, json_body, public) in ops {
        // Placeholders: ids nobody has, names that are no one's.
        let concrete = path
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{node}", "no-such-node")
            .replace("{name}", "no-such-job")
            .replace("{type}", "no-such-type")
            .replace("{port}", "5173");
        for method in methods.iter().filter(|m| **m != Method::GET) {
            // A token of its own: one of these is a logout.
            let token = env.accounts.create_api_token(&email, id).await.unwrap();
            let mut req = Request::builder()
                .method(method.clone())
                .uri(&concrete)
                .header("authorization", format!("Bearer {token}"))
                .header("user-agent", "audit-test/1");
            let body = if json_body {
                req = req.header("content-type", "application/json");
                Body::from("{}")
            } else {
                Body::empty()
            };
            let resp = env
                .router
                .clone()
                .oneshot_req(req.body(body).unwrap())
                .await;
            let status = resp.status().as_u16();
            let found = records(&env, &reader, &format!("action={id}&limit=10")).await;
            let r = found
                .iter()
                .find(|r| r["method"] == method.as_str() && r["route"] == path)
                .unwrap_or_else(|| {
                    panic!("{method} {path} ({id}) answered {status} and left no record: {found:?}")
                });
            assert_eq!(r["status"], status, "{id}: {r}");
            let outcome = match status {
                ..=399 => "done",
                400..=499 => "refused",
                _ => "failed",
            };
            assert_eq!(r["outcome"], outcome, "{id}: {r}");
            // A public operation (a login) asks for no credentials: its
            // actor is whoever it logs in.
            if !public {
                assert_eq!(r["actor"]["userId"], admin_id.to_string(), "{id}: {r}");
                assert_eq!(r["actor"]["credential"], "token", "{id}: {r}");
                assert_eq!(r["actor"]["credentialName"], id, "{id}: {r}");
            }
            assert_eq!(r["actor"]["userAgent"], "audit-test/1", "{id}: {r}");
            if outcome != "done" {
                assert!(r["code"].is_string(), "{id}: a refusal names its code: {r}");
            }
        }
    }
}

/// `oneshot` without the response check of `TestEnv::send` (these are
/// made-up requests whose answers vary).
trait Oneshot {
    async fn oneshot_req(self, req: Request<Body>) -> axum::response::Response;
}

impl Oneshot for axum::Router {
    async fn oneshot_req(self, req: Request<Body>) -> axum::response::Response {
        use tower::ServiceExt;
        self.oneshot(req).await.unwrap()
    }
}

#[tokio::test]
async fn logins_refusals_and_someone_elses_resources_are_recorded_and_nothing_secret() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let (member_id, member) = env.user(Role::Member).await;

    // A failed login: who tried, never the password.
    let (s, _) = env
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": "who@example.com", "password": "the-secret-tried" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = &records(&env, &admin, "action=login").await[0];
    assert_eq!(r["outcome"], "refused", "{r}");
    assert_eq!(r["status"], 401);
    assert_eq!(r["code"], "unauthorized");
    assert_eq!(r["actor"]["email"], "who@example.com");
    assert_eq!(r["actor"]["credential"], "none");
    assert!(!r.to_string().contains("the-secret-tried"), "{r}");
    // A login that works names its user and session.
    let (uid, email) = env.user_with_email(Role::Member).await;
    let (s, _) = env
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": "password123" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = &records(&env, &admin, "action=login").await[0];
    assert_eq!(r["outcome"], "done");
    assert_eq!(r["actor"]["userId"], uid.to_string());
    assert_eq!(r["actor"]["credential"], "session");
    assert!(!r.to_string().contains("password123"), "{r}");

    // Password changes are recorded, their passwords are not.
    let (s, _) = env
        .post(
            "/api/auth/password",
            &member,
            json!({ "currentPassword": "password123", "newPassword": "another-secret-1" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = &records(&env, &admin, "action=changePassword").await[0];
    assert_eq!(r["actor"]["userId"], member_id.to_string());
    assert!(!r.to_string().contains("another-secret-1"), "{r}");

    // Without credentials: refused, no actor.
    let (s, _) = env
        .call(
            Method::POST,
            "/api/projects",
            None,
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = &records(&env, &admin, "action=createProject").await[0];
    assert_eq!(r["outcome"], "refused");
    assert!(r["actor"]["userId"].is_null(), "{r}");

    // A member's project, created (its id recorded), then deleted by an
    // admin: the record names the owner.
    let pid = env.project(&member, "theirs").await;
    let r = &records(&env, &admin, "action=createProject").await[0];
    assert_eq!(r["resourceType"], "project");
    assert_eq!(r["resourceId"], pid.as_str());
    assert_eq!(r["details"]["name"], "theirs");
    assert!(r["ownerId"].is_null(), "their own: {r}");
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &records(&env, &admin, &format!("resource={pid}")).await[0];
    assert_eq!(r["action"], "deleteProject");
    assert_eq!(r["ownerId"], member_id.to_string(), "{r}");
    assert_eq!(r["details"]["purge"], "true");
    // Filters: by user, by time.
    let mine = records(&env, &admin, &format!("user={member_id}")).await;
    assert!(mine
        .iter()
        .all(|r| r["actor"]["userId"] == member_id.to_string()));
    assert!(mine.iter().any(|r| r["action"] == "createProject"));
    let later = records(&env, &admin, "since=2999-01-01T00:00:00Z").await;
    assert!(later.is_empty());
    let (s, v) = env.get("/api/audit?since=yesterday", &admin).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // A member cannot read it.
    let (s, _) = env.get("/api/audit", &member).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_log_comes_by_pages_and_old_records_go() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    for i in 0..7 {
        env.project(&admin, &format!("p{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/audit?action=createProject&limit=3&cursor={c}"),
            None => "/api/audit?action=createProject&limit=3".into(),
        };
        let (s, v) = env.get(&q, &admin).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["page"]["total"], 7);
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].clone()),
        );
        match v["page"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    // Retention: records older than the configured days go; a dry run
    // counts them.
    env.berth
        .core()
        .store()
        .insert_audit(&berth::domain::audit::AuditRecord {
            id: uuid::Uuid::new_v4(),
            at: berth::domain::now_millis() - 400 * 86_400_000,
            actor_id: None,
            actor_email: None,
            credential: berth::domain::audit::Credential::None,
            credential_id: None,
            credential_name: None,
            client: None,
            user_agent: None,
            action: "ancient".into(),
            method: "POST".into(),
            route: "/old".into(),
            resource_type: None,
            resource_id: None,
            owner_id: None,
            details: Default::default(),
            outcome: berth::domain::audit::AuditOutcome::Done,
            status: Some(200),
            code: None,
            replica: None,
        })
        .await
        .unwrap();
    let (s, v) = env
        .post(
            "/api/jobs/audit-retention/run?dryRun=true",
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["details"][0]["outcome"], "planned", "{v}");
    assert_eq!(records(&env, &admin, "action=ancient").await.len(), 1);
    let (s, v) = env
        .post("/api/jobs/audit-retention/run", &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["data"]["details"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("older than 365 days"),
        "{v}"
    );
    assert!(records(&env, &admin, "action=ancient").await.is_empty());
    assert_eq!(
        records(&env, &admin, "action=createProject&limit=50")
            .await
            .len(),
        7
    );
}

#[tokio::test]
async fn a_failure_on_berths_side_is_recorded_as_failed() {
    // The engine cut off: a start fails with 503.
    let mut relay_env = TestEnv::new().await;
    relay_env.stop_watcher();
    let (_, admin) = relay_env.user(Role::Admin).await;
    let (w, _) = relay_env.workspace(&admin).await;
    let sock = relay_env.dir.path().join("engine.sock");
    let mut relay = common::EngineRelay::start(&sock);
    let cut = relay_env.relayed(&sock);
    let app = berth::app::App::around(cut);
    let router = berth::http::app(app);
    relay.cut();
    let resp = router
        .oneshot_req(
            Request::post(format!("/api/workspaces/{w}/start"))
                .header("authorization", format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let status = resp.status().as_u16();
    // Recorded by the cut-off Berth, in the same store.
    let mut found = None;
    for _ in 0..20 {
        let list = records(&relay_env, &admin, "action=startWorkspace").await;
        if let Some(r) = list.into_iter().find(|r| r["outcome"] == "failed") {
            found = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = found.expect("a failed start is recorded");
    assert_eq!(r["status"], status);
    assert_eq!(r["resourceId"], w.as_str());
    assert!(r["code"].is_string(), "{r}");
}

#[tokio::test]
async fn the_clis_admin_commands_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "test-cliaudit-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\ninstance = \"{instance}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = common::berth_bin()
            .args(args)
            .env("BERTH_CONFIG", &config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(c.stdin.take());
        c.wait_with_output().unwrap()
    };
    assert!(run(
        &[
            "user",
            "add",
            "root@example.com",
            "--admin",
            "--password-stdin"
        ],
        Some("pw-long-enough\n")
    )
    .status
    .success());
    assert!(run(
        &["token", "create", "root@example.com", "--name", "ci"],
        None
    )
    .status
    .success());
    assert!(run(
        &["user", "quota", "root@example.com", "--running", "2"],
        None
    )
    .status
    .success());
    // Refused: the last admin cannot become a member.
    assert!(!run(&["user", "role", "root@example.com", "member"], None)
        .status
        .success());
    // Reading is not recorded.
    assert!(run(&["user", "ls"], None).status.success());
    let store = berth::store::Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("data/berth.db").display()
    ))
    .await
    .unwrap();
    let page = store
        .audit_page(
            &Default::default(),
            &berth::domain::page::PageRequest::parse(Some(50), None).unwrap(),
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = page
        .items
        .iter()
        .rev()
        .map(|r| (r.action.clone(), r.outcome.as_str().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("cli.user.add".to_string(), "done".to_string()),
            ("cli.token.create".into(), "done".into()),
            ("cli.user.quota".into(), "done".into()),
            ("cli.user.role".into(), "refused".into()),
        ]
    );
    let add = page.items.last().unwrap();
    assert_eq!(add.credential, berth::domain::audit::Credential::Cli);
    assert_eq!(add.details["email"], "root@example.com");
    assert_eq!(add.details["role"], "admin");
    assert!(!format!("{add:?}").contains("pw-long-enough"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_also_go_to_a_json_lines_file_and_the_cli_reads_the_log_and_quotas() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let path = log.path().to_path_buf();
    let (env, addr) = TestEnv::served(|c| {
        c.audit.log = path.display().to_string();
        c.quotas.admin.running = Some(4);
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    let pid = env.project(&admin, "lined").await;
    let text = std::fs::read_to_string(&path).unwrap();
    let line: Value = serde_json::from_str(
        text.lines()
            .find(|l| l.contains("createProject"))
            .expect("a JSON line for the project"),
    )
    .unwrap();
    assert_eq!(line["action"], "createProject");
    assert_eq!(line["resource"]["id"], pid.as_str());
    assert_eq!(line["outcome"], "done");
    let cli = |args: &[&str]| {
        let out = common::berth_bin()
            .args(args)
            .args(["--server", &format!("http://{addr}"), "--token", &admin])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = cli(&["audit", "--action", "createProject"]);
    assert!(
        table.contains("createProject") && table.contains(&pid),
        "{table}"
    );
    let quota = cli(&["account", "quota"]);
    let running = quota.lines().find(|l| l.starts_with("running")).unwrap();
    assert!(
        running.contains(" 4 ") && running.contains("role"),
        "{quota}"
    );
    let json = cli(&["account", "quota", "--json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["running"]["limit"], 4.0);
}
