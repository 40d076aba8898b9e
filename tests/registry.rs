//! Type images from a real registry: Debian's `docker-registry` (Docker's
//! distribution 2.8) on a loopback port, with the test image pushed to it.
//! An admin pulls a missing type image through the API and follows its
//! progress; a member may not; `images.pull_on_start` pulls at a
//! workspace's start; a registry that does not answer is a clear 502.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use berth::domain::Role;
use common::{box_type, docker, TestEnv, TEST_IMAGE};
use serde_json::json;

/// A registry serving on a free loopback port until dropped.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry() -> Registry {
    let bin = ["/usr/bin/docker-registry", "/usr/bin/registry"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Debian's docker-registry is installed (scripts/setup does it)");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the registry never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry {
        child,
        port,
        _dir: dir,
    }
}

/// Pushes the test image to the registry as `name` and removes the local
/// tag, so that only a pull brings `name` back.
fn push(reg: &Registry, name: &str) -> String {
    common::ensure_test_image();
    let image = format!("127.0.0.1:{}/{name}", reg.port);
    docker(&["tag", TEST_IMAGE, &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    image
}

/// Pushes an image of its own (a layer no other image shares: 1 MiB of
/// random bytes) as `name` and removes it here, so a pull downloads it.
fn push_unique(reg: &Registry, name: &str) -> String {
    use rand::RngCore;
    let mut data = vec![0u8; 1 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "random.bin", &data[..]).unwrap();
    let tarball = b.into_inner().unwrap();
    let image = format!("127.0.0.1:{}/{name}", reg.port);
    let mut import = Command::new("docker")
        .args(["import", "-", &image])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tarball).unwrap();
    assert!(import.wait().unwrap().success());
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pulls_a_missing_type_image_and_follows_it() {
    let reg = registry();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let pulled = push_unique(&reg, &format!("berth-test/pulled:{}", &tag[..12]));
    let at_start = push(&reg, &format!("berth-test/at-start:{}", &tag[..12]));
    let env = TestEnv::with(|c| {
        let mut t = box_type();
        t.image = pulled.clone();
        c.types.insert("pulled".into(), t);
        let mut t = box_type();
        t.image = at_start.clone();
        c.types.insert("atstart".into(), t);
        let mut t = box_type();
        t.image = "127.0.0.1:1/berth-test/nowhere:1".into();
        c.types.insert("nowhere".into(), t);
        c.images.pull_on_start = true;
    })
    .await;
    let cleanup = [pulled.clone(), at_start.clone()];
    let (_, admin) = env.user(Role::Admin).await;
    let member = env.member().await;

    async fn available(env: &TestEnv, token: &str, name: &str) -> bool {
        let (_, v) = env.get("/api/workspaces/types", token).await;
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == name)
            .unwrap()["available"]
            .as_bool()
            .unwrap()
    }
    assert!(!available(&env, &admin, "pulled").await);

    // A member may not pull.
    let (s, _) = env
        .post("/api/workspaces/types/pulled/pull", &member, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // An admin may; its progress is followed until done.
    let (s, v) = env
        .post("/api/workspaces/types/pulled/pull", &admin, json!({}))
        .await;
    assert!(s == StatusCode::ACCEPTED || s == StatusCode::OK, "{s} {v}");
    assert_eq!(v["data"]["image"], pulled);
    let done = env
        .wait_for(
            &admin,
            "/api/workspaces/types/pulled/pull",
            "the pull to finish",
            60,
            |d| d["state"] != "pulling",
        )
        .await;
    assert_eq!(done["state"], "done", "{done}");
    let layers = done["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{done}");
    assert!(layers[0]["done"].as_bool().unwrap(), "{done}");
    // The layer's bytes were counted on the way (compressed, about 1 MiB).
    assert!(done["bytesTotal"].as_u64().unwrap() > 500_000, "{done}");
    assert_eq!(done["bytesDone"], done["bytesTotal"]);
    assert!(
        done["status"].as_str().unwrap().contains("Digest")
            || done["status"].as_str().unwrap().contains("Status"),
        "{done}"
    );
    assert!(available(&env, &admin, "pulled").await);
    let (s, _) = env.get("/api/workspaces/types/pulled/pull", &member).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // images.pull_on_start: a workspace's start pulls its missing image.
    let p = env.project(&member, "p").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            &member,
            json!({ "name": "w", "type": "atstart", "projectId": p }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(&member, &id).await;
    assert!(available(&env, &admin, "atstart").await);

    // No registry answers: a 502 that says which.
    let (s, v) = env
        .post("/api/workspaces/types/nowhere/pull", &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "registry_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1"),
        "{v}"
    );
    // An unknown type is a 404.
    let (s, _) = env
        .post("/api/workspaces/types/bogus/pull", &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    drop(env);
    for image in cleanup {
        let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    }
}
