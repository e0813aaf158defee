//! [`RedisServer`]: a test-owned `redis-server` on a free loopback port, to stop, restart empty,
//! freeze and cut, for the change-log tests, benches and the fleet example.

use std::io;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` (from `PATH`) on `127.0.0.1:<free port>`, without persistence
/// (`--save "" --appendonly no`), so a restart comes back empty as a cache-only Redis does.
/// Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    replica_of: Option<u16>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = Self {
            port,
            replica_of: None,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts a replica of `primary` (`--replicaof`), and waits until it answers `PING`.
    pub fn start_replica_of(primary: &RedisServer) -> io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = Self {
            port,
            replica_of: Some(primary.port),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (every connection drops; nothing is kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Freezes the process (`SIGSTOP`): connections stay open but nothing answers, as with a
    /// network partition that drops packets silently.
    pub fn freeze(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Thaws a frozen server (`SIGCONT`).
    pub fn thaw(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    /// A client for raw commands in tests.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a loopback Redis URL parses")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| io::Error::other("redis-server is not running"))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| io::Error::other("kill failed"))
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            // A replica syncs at once instead of after the default 5 s.
            .args(["--repl-diskless-sync-delay", "0"]);
        if let Some(primary) = self.replica_of {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let give_up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < give_up {
            if self.pings() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(io::Error::other(
            "redis-server did not answer PING within 10 s",
        ))
    }

    fn pings(&self) -> bool {
        let Ok(mut conn) = self
            .client()
            .get_connection_with_timeout(Duration::from_millis(100))
        else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen server would not die of SIGKILL's peers; thaw is harmless otherwise.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.stop();
    }
}
