//! A real SMTP server for tests: Python's `aiosmtpd`, started on a free loopback port.
//!
//! Using a real server (rather than lettre's stub transport) exercises the actual SMTP dialogue,
//! dot-stuffing and reply-code handling of the mailer. `aiosmtpd` lives in the project's Python
//! venv (`.ci/.tools/venv`), which `.ci` already provisions for the Python test suite.
//!
//! Availability policy: when no interpreter with `aiosmtpd` is found, [`LocalSmtp::start`]
//! returns `None` on a developer machine (the test prints a skip line and passes), but panics
//! under CI, so a broken provisioning step can never turn into a silently skipped test.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the server gets to accept connections after being spawned. Python start-up plus
/// the aiosmtpd import takes ~0.3 s normally; 10 s leaves room for a loaded 2-core CI box.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Handler module for [`LocalSmtp::start_rejecting`], written into the server's temp folder and
/// put on `PYTHONPATH`. aiosmtpd's `-c` loads any dotted class path and passes the positional
/// CLI arguments to the class's `from_cli`.
const REJECT_HANDLER: &str = r#"
class Reject:
    """Answers every RCPT TO with a fixed reply code."""

    def __init__(self, code):
        self.code = int(code)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("usage: -c crm_reject.Reject CODE")
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        klass = self.code // 100
        return f"{self.code} {klass}.7.1 <{address}> rejected by the CRM test server"
"#;

/// What the spawned server does with mail; kept so [`LocalSmtp::restart`] can respawn it.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `aiosmtpd.handlers.Mailbox`: accepts everything into a Maildir.
    Store,
    /// `crm_reject.Reject CODE`: refuses every recipient with `CODE`.
    Reject(u16),
}

/// A running `aiosmtpd` on `127.0.0.1`, killed and cleaned up on drop.
#[derive(Debug)]
pub struct LocalSmtp {
    /// Where the server listens; use [`LocalSmtp::url`] for a mailer setting.
    pub addr: SocketAddr,
    /// Private temp folder: `maildir/` for stored mail, `py/` for the handler module,
    /// `server.log` for the server's stderr (shown if it dies). Removed on drop.
    dir: PathBuf,
    python: PathBuf,
    mode: Mode,
    /// `None` between [`LocalSmtp::stop`] and [`LocalSmtp::restart`].
    child: Option<Child>,
}

impl LocalSmtp {
    /// Starts a server that accepts every message and stores it (see [`LocalSmtp::messages`]).
    ///
    /// Returns `None` (after printing why to stderr) when no Python with `aiosmtpd` is found
    /// and `CI` is unset; panics in that case under CI. Also panics if the server, once found,
    /// fails to start — that is a real failure, not a missing tool.
    pub fn start() -> Option<LocalSmtp> {
        Self::launch(Mode::Store)
    }

    /// Starts a server that answers every `RCPT TO` with `code` (e.g. 450 for a transient,
    /// 550 for a permanent rejection), so no message is ever stored. Same availability rules
    /// as [`LocalSmtp::start`].
    pub fn start_rejecting(code: u16) -> Option<LocalSmtp> {
        assert!(
            (400..600).contains(&code),
            "reject code must be 4xx or 5xx, got {code}"
        );
        Self::launch(Mode::Reject(code))
    }

    /// `smtp://127.0.0.1:<port>` — plain SMTP, as the mailer's settings expect.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The raw text of every message received so far, oldest first. aiosmtpd's `Mailbox` adds
    /// `X-Peer`, `X-MailFrom` and `X-RcptTo` after the sent headers; everything else is as sent.
    ///
    /// The server writes the file before it answers `250` to `DATA`, so after a successful
    /// send the message is already here.
    pub fn messages(&self) -> Vec<String> {
        let maildir = self.dir.join("maildir");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        // Maildir names start with the delivery time, so name order breaks mtime ties.
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect()
    }

    /// Kills the server but keeps its port number and stored mail, so a test can observe
    /// "connection refused" and then [`LocalSmtp::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same behaviour and Maildir.
    /// Panics if it does not come up (e.g. another process took the port meanwhile).
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn(&self.python, &self.dir, self.addr, self.mode);
        match wait_ready(child, self.addr, &self.dir) {
            Ok(child) => self.child = Some(child),
            Err(log) => panic!("aiosmtpd did not restart on {}:\n{log}", self.addr),
        }
    }

    fn launch(mode: Mode) -> Option<LocalSmtp> {
        let python = match find_python(&repo_root()) {
            Ok(python) => python,
            Err(reason) => return unavailable(&reason),
        };
        let dir = make_temp_dir();
        if let Mode::Reject(_) = mode {
            let py = dir.join("py");
            std::fs::create_dir_all(&py).expect("create handler folder");
            std::fs::write(py.join("crm_reject.py"), REJECT_HANDLER).expect("write handler");
        }

        // The free port is found by binding and releasing it, so another process may grab it
        // before aiosmtpd binds; a few attempts make that race harmless.
        let mut last_log = String::new();
        for _ in 0..3 {
            let addr = crate::free_port();
            let child = spawn(&python, &dir, addr, mode);
            match wait_ready(child, addr, &dir) {
                Ok(child) => {
                    return Some(LocalSmtp {
                        addr,
                        dir,
                        python,
                        mode,
                        child: Some(child),
                    });
                }
                Err(log) => last_log = log,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "aiosmtpd ({}) failed to start:\n{last_log}",
            python.display()
        );
    }
}

impl Drop for LocalSmtp {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The repository root, where `.ci/.tools/venv` lives. In the testkit crate
/// `CARGO_MANIFEST_DIR` is `<repo>/testkit`, hence one level up; adapt here if the file moves.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Picks the interpreter: `CRM_TEST_PYTHON` if set (an explicit choice is never second-guessed),
/// else the project venv, else `python3` from `PATH`; then checks that it can import aiosmtpd.
fn find_python(repo_root: &Path) -> Result<PathBuf, String> {
    let python = match std::env::var_os("CRM_TEST_PYTHON").filter(|p| !p.is_empty()) {
        Some(explicit) => PathBuf::from(explicit),
        None => {
            let venv = repo_root.join(".ci/.tools/venv/bin/python");
            if venv.exists() {
                venv
            } else {
                PathBuf::from("python3")
            }
        }
    };
    let status = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(python),
        Ok(_) => Err(format!("{} cannot import aiosmtpd", python.display())),
        Err(err) => Err(format!("cannot run {}: {err}", python.display())),
    }
}

/// Whether we run under CI. CI sets `CI=true`; any other non-empty value except `false`/`0`
/// counts too, so a differently spelled CI still cannot skip tests.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn unavailable(reason: &str) -> Option<LocalSmtp> {
    let hint = "install it with: python3 -m venv .ci/.tools/venv && \
                .ci/.tools/venv/bin/pip install aiosmtpd (or set CRM_TEST_PYTHON)";
    if under_ci() {
        panic!("SMTP test server unavailable under CI: {reason}; {hint}");
    }
    eprintln!("SKIP: SMTP test server unavailable: {reason}; {hint}");
    None
}

fn make_temp_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "crm-smtp-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create SMTP test server folder");
    dir
}

fn spawn(python: &Path, dir: &Path, addr: SocketAddr, mode: Mode) -> Child {
    let log = std::fs::File::create(dir.join("server.log")).expect("create server.log");
    let mut cmd = Command::new(python);
    // -n: don't try to setuid to `nobody` (fails or, as root, loses access to the temp folder).
    cmd.args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()]);
    match mode {
        Mode::Store => {
            cmd.args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.join("maildir"));
        }
        Mode::Reject(code) => {
            cmd.args(["-c", "crm_reject.Reject", &code.to_string()]);
            let mut path = std::ffi::OsString::from(dir.join("py"));
            if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
                path.push(":");
                path.push(existing);
            }
            cmd.env("PYTHONPATH", path);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {}: {err}", python.display()))
}

/// Polls until the port accepts a TCP connection. On failure the child is killed and the
/// server's stderr returned, so the panic message says why (bad handler, port taken, ...).
fn wait_ready(mut child: Child, addr: SocketAddr, dir: &Path) -> Result<Child, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut log = String::new();
            if let Ok(mut file) = std::fs::File::open(dir.join("server.log")) {
                let _ = file.read_to_string(&mut log);
            }
            if !exited {
                log.push_str("\n(not accepting connections after 10 s)");
            }
            return Err(log);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
