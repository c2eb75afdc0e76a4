//! A real NATS server with JetStream for tests: Debian's `nats-server`,
//! started on a free loopback port with its own store, which a test can kill
//! and start again (same port, same store) to play an outage.
//!
//! Without `nats-server` on the PATH (or in /usr/sbin), [`LocalNats::start`]
//! returns `None` on a developer machine (the test prints a skip line) but
//! panics under CI, so missing provisioning never turns into a skipped test.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running `nats-server -js` on 127.0.0.1, killed and cleaned up on drop.
#[derive(Debug)]
pub struct LocalNats {
    /// Where clients connect.
    pub addr: SocketAddr,
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

fn binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")]);
    candidates
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file())
}

impl LocalNats {
    /// Starts a server, or `None` (outside CI) when none is installed.
    pub fn start() -> Option<Self> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var("CI").is_err(),
                "nats-server is not installed: CI must provide it (apt-get install nats-server)"
            );
            eprintln!("skipped: nats-server is not installed");
            return None;
        };
        let addr = crate::free_port();
        let dir = std::env::temp_dir().join(format!("crm-nats-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("a folder for the JetStream store");
        let mut server = Self {
            addr,
            binary,
            dir,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Kills the server outright (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("a log file");
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .arg("-sd")
            .arg(self.dir.join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {} within 10 s: {}",
                self.addr,
                read_log(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
