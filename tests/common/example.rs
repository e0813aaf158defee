//! The example binaries as a user runs them: configured by environment variables, against a
//! FakeKinde, on a real socket. `cargo test` builds the examples before running tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use claimcheck::testing::FakeKinde;

pub fn example_binary(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps/; examples live in target/<profile>/examples/.
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example as built with this test's features: `target/<profile>/examples/server` is the
/// last one built, with whichever features that build had; the hashed copies are all there.
pub fn server_binary() -> PathBuf {
    let wanted = if cfg!(feature = "redis") {
        "features: redis"
    } else {
        "features: none"
    };
    let uplifted = example_binary("server");
    let dir = uplifted.parent().unwrap().to_owned();
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("server-") && path.extension().is_none()
        })
        .collect();
    candidates
        .sort_by_key(|path| std::cmp::Reverse(path.metadata().and_then(|m| m.modified()).ok()));
    candidates.insert(0, uplifted);
    candidates
        .into_iter()
        .find(|path| {
            Command::new(path)
                .arg("--version")
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(wanted))
        })
        .expect("the server example is built")
}

/// Starts the example against `kinde` with `env` added; returns the process and its base URL.
pub async fn start_server(kinde: &FakeKinde, env: &[(&str, &str)]) -> (Killed, String) {
    let binary = server_binary();
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("KINDE_ISSUER_URL", kinde.issuer())
        .env("KINDE_AUDIENCE", kinde.audience())
        .env("CLAIMCHECK_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = Killed(command.spawn().unwrap());
    let line = first_line(&mut child).await;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));
    (child, base)
}

/// The first line `child` (spawned with a piped stdout) prints: `listening on …` once it
/// serves.
pub async fn first_line(child: &mut Killed) -> String {
    let stdout = child.0.stdout.take().expect("stdout is piped");
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap()
}
