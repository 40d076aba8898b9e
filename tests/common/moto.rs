//! moto's S3 server (PyPI `moto[server]`, installed into `target/pytools`
//! on first use) on a loopback port, with one bucket: the object store the
//! remote-copy tests and the replica tests use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

pub const BUCKET: &str = "berth-test";

fn moto_binary() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/pytools");
    let bin = venv.join("bin/moto_server");
    if !bin.exists() {
        if !venv.join("bin/python").exists() {
            let st = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 (to install moto's S3 server for this test)");
            assert!(st.success(), "python3 -m venv failed");
        }
        let st = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "moto[server]==5.1.18",
            ])
            .status()
            .expect("pip");
        assert!(st.success(), "installing moto[server] from PyPI failed");
    }
    bin
}

/// An S3 server on 127.0.0.1:port, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub async fn start(port: u16) -> Moto {
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // CreateBucket (moto does not check signatures by default).
            match reqwest::Client::new().put(moto.url(BUCKET)).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                other => panic!("moto_server did not come up: {other:?}"),
            }
        }
        moto
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The bucket, as a client with its own credentials sees it.
    pub fn bucket(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_access_key_id("reader")
            .with_secret_access_key("reader-secret")
            .build()
            .unwrap()
    }

    /// An object's bytes, or `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.bucket().get(&ObjectPath::from(key)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("reading {key}: {e}"),
        }
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.bucket()
            .put(&ObjectPath::from(key), PutPayload::from(body))
            .await
            .unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
