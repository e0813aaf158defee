//! A log captured with a test subscriber, to assert what a user would read.

use std::io;
use std::sync::{Arc, Mutex};

/// Everything written to the captured log.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Installs a subscriber writing `warn` and above here, for this thread.
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        self.capture_at(tracing::Level::WARN)
    }

    /// Installs a subscriber writing `level` and above here, for this thread (`DEBUG` shows
    /// why each credential was rejected).
    pub fn capture_at(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || log.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
