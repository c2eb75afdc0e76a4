//! The SMTP relay the mailer sends through: lettre's SMTP client on
//! connections of our own. lettre's transport writes a message's body and
//! its closing dot in two writes on a socket with Nagle's algorithm on, so
//! each message waits for the relay's delayed ACK (about 40 ms: 22 messages
//! a second in `marketing_bench`). Here sockets set `TCP_NODELAY` (except
//! implicit TLS, which lettre connects itself) and a connection is reused
//! for a run of messages.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use lettre::{
    address::Envelope,
    transport::smtp::{
        self,
        authentication::{Credentials, DEFAULT_MECHANISMS},
        client::{AsyncSmtpConnection, TlsParameters},
        extension::ClientId,
        response::Response,
    },
};
use tokio::{net::TcpStream, time::timeout};

/// The longest connecting (TCP, greeting, TLS, login) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest one message may take once connected.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a NOOP to an idle connection may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one message may take in all (finding or making a connection
/// and sending): well inside the sender's grace, 120 s by default (a message
/// mid-send longer than that is taken for a stopped sender's).
const TOTAL_TIMEOUT: Duration = Duration::from_secs(90);
/// A connection idle this long is asked (NOOP) whether it still works.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(2);
/// A connection idle this long is closed rather than reused.
const CLOSE_IDLE_AFTER: Duration = Duration::from_secs(60);
/// Relays often limit the messages of one connection; new one after this.
const MESSAGES_PER_CONNECTION: u32 = 100;
/// Connections kept open between messages.
const MAX_IDLE: usize = 4;

/// How the connection is secured.
#[derive(Clone)]
enum Security {
    /// Plain SMTP (local relays, tests).
    Plain,
    /// STARTTLS, refusing to go on without it.
    StartTls(TlsParameters),
    /// STARTTLS when the relay offers it.
    Opportunistic(TlsParameters),
    /// TLS from the first byte (`smtps://`).
    Implicit(TlsParameters),
}

/// Why a message did not reach the relay.
#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    /// The relay answered with an error, or the SMTP session failed.
    #[error(transparent)]
    Smtp(#[from] smtp::Error),
    /// The TCP connection could not be made.
    #[error("cannot connect to the SMTP relay: {0}")]
    Connect(#[source] std::io::Error),
    /// The relay did not answer in time.
    #[error("the SMTP relay did not answer within {0:?}")]
    Timeout(Duration),
}

impl RelayError {
    /// Retrying will not help (a 5xx answer).
    pub(super) fn is_permanent(&self) -> bool {
        matches!(self, RelayError::Smtp(error) if error.is_permanent())
    }
}

/// An open connection waiting for the next message.
struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
    sent: u32,
}

/// One configured relay with its open connections.
pub(super) struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Relay {
    // The credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// The relay of an `smtp://` or `smtps://` URL (see `Mailer::from_settings`).
    /// The error never repeats the URL: it may carry a password.
    pub(super) fn from_url(url: &str) -> Result<Relay, String> {
        let url = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("no host")?
            .to_owned();
        let tls_mode = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.to_ascii_lowercase());
        let tls = || TlsParameters::new(host.clone()).map_err(|e| format!("TLS: {e}"));
        let (security, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtp", None | Some("none")) => (Security::Plain, 25),
            ("smtp", Some("starttls" | "required")) => (Security::StartTls(tls()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(tls()?), 587),
            ("smtps", None) => (Security::Implicit(tls()?), 465),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme {scheme:?} or tls {tls:?} (smtp:// with tls=none, starttls or opportunistic; smtps://)"
                ));
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| "user or password is not UTF-8".to_owned())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        let path = url.path().trim_matches('/');
        let hello = if path.is_empty() {
            ClientId::default()
        } else {
            ClientId::Domain(path.to_owned())
        };
        Ok(Relay {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends one message, on an open connection when one works.
    pub(super) async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, RelayError> {
        timeout(TOTAL_TIMEOUT, self.send_untimed(envelope, message))
            .await
            .map_err(|_| RelayError::Timeout(TOTAL_TIMEOUT))?
    }

    async fn send_untimed(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, RelayError> {
        let (mut connection, sent) = match self.reuse().await {
            Some(idle) => (idle.connection, idle.sent),
            None => (self.connect().await?, 0),
        };
        let response = timeout(SEND_TIMEOUT, connection.send(envelope, message))
            .await
            .map_err(|_| RelayError::Timeout(SEND_TIMEOUT))??;
        self.keep(connection, sent + 1).await;
        Ok(response)
    }

    /// An idle connection that still works, if there is one.
    async fn reuse(&self) -> Option<Idle> {
        loop {
            let mut idle = self.pop_idle()?;
            let idle_for = idle.since.elapsed();
            if idle_for >= CLOSE_IDLE_AFTER {
                quit(idle.connection).await;
                continue;
            }
            // A relay may have closed it; finding out now costs one round
            // trip, finding out mid-message would cost a retry.
            if idle_for < CHECK_IDLE_AFTER
                || timeout(CHECK_TIMEOUT, idle.connection.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Some(idle);
            }
        }
    }

    fn pop_idle(&self) -> Option<Idle> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    /// Keeps a connection for the next message, or closes it.
    async fn keep(&self, connection: AsyncSmtpConnection, sent: u32) {
        let rejected = if connection.has_broken() || sent >= MESSAGES_PER_CONNECTION {
            Some(connection)
        } else {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(Idle {
                    connection,
                    since: Instant::now(),
                    sent,
                });
                None
            } else {
                Some(connection)
            }
        };
        if let Some(connection) = rejected {
            quit(connection).await;
        }
    }

    /// A new connection: TCP, greeting, TLS as configured, login.
    async fn connect(&self) -> Result<AsyncSmtpConnection, RelayError> {
        timeout(CONNECT_TIMEOUT, self.connect_untimed())
            .await
            .map_err(|_| RelayError::Timeout(CONNECT_TIMEOUT))?
    }

    async fn connect_untimed(&self) -> Result<AsyncSmtpConnection, RelayError> {
        let mut connection = if let Security::Implicit(tls) = &self.security {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(CONNECT_TIMEOUT),
                &self.hello,
                Some(tls.clone()),
                None,
            )
            .await?
        } else {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(RelayError::Connect)?;
            stream.set_nodelay(true).map_err(RelayError::Connect)?;
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await?
        };
        match &self.security {
            Security::StartTls(tls) => connection.starttls(tls.clone(), &self.hello).await?,
            Security::Opportunistic(tls) if connection.can_starttls() => {
                connection.starttls(tls.clone(), &self.hello).await?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(connection)
    }
}

/// Says goodbye, not waiting long for the answer.
async fn quit(mut connection: AsyncSmtpConnection) {
    let _ = timeout(Duration::from_secs(5), connection.quit()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_security_and_default_ports() {
        let relay = |url: &str| Relay::from_url(url).unwrap();
        let r = relay("smtp://127.0.0.1:2525");
        assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 2525));
        assert!(matches!(r.security, Security::Plain) && r.credentials.is_none());
        let r = relay("smtp://user:p%40ss@mail.example.com?tls=starttls");
        assert_eq!(r.port, 587);
        assert!(matches!(r.security, Security::StartTls(_)));
        assert_eq!(
            r.credentials,
            Some(Credentials::new("user".into(), "p@ss".into()))
        );
        assert!(matches!(
            relay("smtp://m.example.com?tls=opportunistic").security,
            Security::Opportunistic(_)
        ));
        let r = relay("smtps://m.example.com/ehlo.example.org");
        assert_eq!(r.port, 465);
        assert!(matches!(r.security, Security::Implicit(_)));
        assert_eq!(r.hello, ClientId::Domain("ehlo.example.org".into()));
    }
}
