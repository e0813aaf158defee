//! `examples/server.rs` as a user runs it: configured by environment variables, against a
//! FakeKinde, on a real socket. `cargo test` builds the examples before running tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use claimcheck::testing::FakeKinde;

fn example_binary(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps/; examples live in target/<profile>/examples/.
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_server_example_serves_health_me_and_reports() {
    let kinde = FakeKinde::start().await;
    let binary = example_binary("server");
    assert!(binary.exists(), "{} not built", binary.display());
    let mut child = Killed(
        Command::new(binary)
            .env_clear()
            .env("KINDE_ISSUER_URL", kinde.issuer())
            .env("KINDE_AUDIENCE", kinde.audience())
            .env("CLAIMCHECK_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));

    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<String>| {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    assert_eq!(get("/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/me", None).await.unwrap().status(), 401);
    let token = kinde
        .user_token("kp_1")
        .org_code("org_abc")
        .permissions(["read:reports"])
        .sign();
    let me: serde_json::Value = get("/me", Some(token.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": "kp_1", "org_code": "org_abc", "permissions": ["read:reports"]})
    );
    assert_eq!(get("/reports", Some(token)).await.unwrap().status(), 200);
    let without = kinde.user_token("kp_2").sign();
    assert_eq!(get("/reports", Some(without)).await.unwrap().status(), 403);
    drop(child);
}

#[test]
fn the_server_example_refuses_to_start_without_configuration() {
    let output = Command::new(example_binary("server"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("KINDE_ISSUER_URL"), "{stderr}");
}
