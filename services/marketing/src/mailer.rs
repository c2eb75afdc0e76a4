//! Outbound mail for campaigns: turns an [`OutgoingMail`] into a MIME message and hands it to
//! an SMTP relay, or — when no relay is configured — drops it as an `.eml` file so a developer
//! can open exactly what a recipient would have received.
//!
//! The caller decides what to do with a failure from the [`SendOutcome`] alone: `Transient`
//! means "try again later" (greylisting, full mailbox, relay down), `Permanent` means "this
//! recipient or this mail will never be accepted as it is" (bad address, 5xx).

mod relay;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use relay::{Relay, RelayError};

/// Header names the mailer writes itself. A caller's extra header with one of these names is
/// refused rather than applied, because lettre's raw insert replaces an existing header of the
/// same name: a stray `From` or `List-Unsubscribe` in campaign metadata would otherwise silently
/// rewrite the sender or break the RFC 8058 one-click contract.
const RESERVED_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A configuration problem found while building a [`Mailer`]; the service should refuse to
/// start on it rather than discover it at the first send.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The SMTP URL could not be parsed or names an unsupported scheme / `tls` mode. The URL
    /// itself is deliberately left out of the message because it may carry a password.
    #[error("invalid SMTP URL: {0}")]
    InvalidUrl(String),
    /// The folder for `.eml` files (used when no SMTP URL is set) could not be created.
    #[error("cannot create mail folder {path}: {source}")]
    MailDir {
        /// The folder that was asked for.
        path: PathBuf,
        /// Why it could not be created.
        #[source]
        source: std::io::Error,
    },
}

/// One campaign mail to one recipient, as the marketing service describes it. Plain strings
/// keep the mailer free of the domain types; every field is validated at send time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Sender, either `"Name <addr@example.com>"` or a bare `"addr@example.com"`.
    pub from: String,
    /// Optional `Reply-To`, same syntax as `from`.
    pub reply_to: Option<String>,
    /// The single recipient, same syntax as `from`.
    pub to: String,
    /// Subject line; non-ASCII is RFC 2047-encoded by lettre.
    pub subject: String,
    /// HTML body; may be empty, in which case only the text part is sent.
    pub html_body: String,
    /// Plain-text body; may be empty, in which case only the HTML part is sent.
    pub text_body: String,
    /// One-click unsubscribe URL (RFC 8058). When non-empty the mail carries
    /// `List-Unsubscribe: <url>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`,
    /// which large mailbox providers require for bulk senders.
    pub unsubscribe_url: String,
    /// `Message-ID`, e.g. `"<uuid@marketing.crm>"`; angle brackets are added when missing. An
    /// empty string lets lettre generate one, but callers should set it so bounces and
    /// complaints can be matched back to the send.
    pub message_id: String,
    /// Extra headers such as `("X-CRM-Campaign", "42")`, written in order (a later duplicate
    /// name replaces an earlier one). Names the mailer sets itself are refused (`Permanent`).
    pub headers: Vec<(String, String)>,
}

/// What happened to one send, already sorted into the three cases a campaign runner acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted by the relay (or written to disk). `response` is the server's final reply,
    /// e.g. `"250 OK"`, or `"saved <path>"` for the file transport — worth storing for support.
    Sent {
        /// Server reply or file location.
        response: String,
    },
    /// Worth retrying later: SMTP 4xx, connection refused/reset, timeout, TLS hiccup, disk error.
    Transient {
        /// Human-readable cause, safe to log (no credentials).
        reason: String,
    },
    /// Retrying will not help: SMTP 5xx or a mail that cannot be built (bad address, bad
    /// header, no body). The recipient/mail should be marked failed.
    Permanent {
        /// Human-readable cause, safe to log (no credentials).
        reason: String,
    },
}

/// The configured delivery path; private so the service only ever sees [`Mailer`].
#[derive(Debug, Clone)]
enum Transport {
    Smtp(Arc<Relay>),
    File {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

/// Sends [`OutgoingMail`]s through SMTP or into a folder of `.eml` files.
///
/// Cheap to clone and safe to share between tasks. SMTP connections are reused between
/// messages (see `relay`).
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: Transport,
}

impl Mailer {
    /// Builds the mailer from the service settings.
    ///
    /// With `smtp_url`, mail goes to that relay:
    /// - `smtp://host:port` — plain SMTP, no TLS (local relays, tests);
    /// - `smtp://user:pass@host:587?tls=starttls` — STARTTLS, required (lettre's own spelling
    ///   `tls=required`, and `tls=opportunistic`: STARTTLS when offered);
    /// - `smtps://user:pass@host:465` — implicit TLS.
    ///
    /// User and password are percent-decoded. A path (`smtp://host/ehlo.name`) sets the EHLO name.
    ///
    /// Without `smtp_url`, each mail is written to `mail_dir/<uuid>.eml` (the folder is created),
    /// so a person can open it in a mail client.
    ///
    /// Synchronous and runtime-free, so it can run while loading configuration.
    pub fn from_settings(smtp_url: Option<&str>, mail_dir: &Path) -> Result<Mailer, MailerError> {
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(Arc::new(
                Relay::from_url(url).map_err(MailerError::InvalidUrl)?,
            )),
            None => {
                std::fs::create_dir_all(mail_dir).map_err(|source| MailerError::MailDir {
                    path: mail_dir.to_path_buf(),
                    source,
                })?;
                Transport::File {
                    transport: AsyncFileTransport::<Tokio1Executor>::new(mail_dir),
                    dir: mail_dir.to_path_buf(),
                }
            }
        };
        Ok(Mailer { transport })
    }

    /// Builds and delivers one mail, never panicking and never returning an error type: every
    /// failure is classified into [`SendOutcome::Transient`] or [`SendOutcome::Permanent`] so
    /// the campaign runner's retry logic is a plain `match`.
    pub async fn send(&self, mail: &OutgoingMail) -> SendOutcome {
        let message = match build_message(mail) {
            Ok(message) => message,
            Err(reason) => {
                tracing::warn!(message_id = %mail.message_id, %reason, "mail not sendable");
                return SendOutcome::Permanent { reason };
            }
        };

        let outcome = match &self.transport {
            Transport::Smtp(relay) => {
                match relay.send(message.envelope(), &message.formatted()).await {
                    Ok(response) => SendOutcome::Sent {
                        response: response_text(&response),
                    },
                    Err(err) => classify_relay_error(&err),
                }
            }
            Transport::File { transport, dir } => match transport.send(message).await {
                Ok(id) => SendOutcome::Sent {
                    response: format!("saved {}", dir.join(format!("{id}.eml")).display()),
                },
                // Disk full, permissions changed under us...: not the recipient's fault.
                Err(err) => SendOutcome::Transient {
                    reason: format!("writing .eml failed: {err}"),
                },
            },
        };

        // The recipient address is personal data, so logs identify the mail by Message-ID only.
        match &outcome {
            SendOutcome::Sent { response } => {
                tracing::debug!(message_id = %mail.message_id, %response, "mail sent");
            }
            SendOutcome::Transient { reason } => {
                tracing::warn!(message_id = %mail.message_id, %reason, "mail deferred");
            }
            SendOutcome::Permanent { reason } => {
                tracing::warn!(message_id = %mail.message_id, %reason, "mail rejected");
            }
        }
        outcome
    }
}

/// Parses an address field; the error names the field so the failure reason is actionable.
fn mailbox(field: &str, value: &str) -> Result<Mailbox, String> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|err| format!("invalid {field} address {value:?}: {err}"))
}

/// `HeaderValue::new` RFC 2047-encodes any word containing CR or LF, so values cannot inject
/// headers; names get no such protection from lettre (it only rejects `:` and space), hence the
/// RFC 5322 `ftext` check here.
fn raw_header(name: &str, value: &str) -> Result<HeaderValue, String> {
    let valid = !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if !valid {
        return Err(format!("invalid header name {name:?}"));
    }
    let name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    Ok(HeaderValue::new(name, value.to_owned()))
}

/// Assembles the MIME message; any `Err` is a property of the mail itself, hence `Permanent`.
fn build_message(mail: &OutgoingMail) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(mailbox("from", &mail.from)?)
        .to(mailbox("to", &mail.to)?)
        .subject(mail.subject.clone());
    if let Some(reply_to) = mail.reply_to.as_deref().filter(|r| !r.trim().is_empty()) {
        builder = builder.reply_to(mailbox("reply-to", reply_to)?);
    }

    let message_id = mail.message_id.trim();
    builder = builder.message_id(match message_id {
        "" => None,
        id if id.starts_with('<') && id.ends_with('>') => Some(id.to_owned()),
        id => Some(format!("<{id}>")),
    });

    if !mail.unsubscribe_url.is_empty() {
        builder = builder
            .raw_header(raw_header(
                "List-Unsubscribe",
                &format!("<{}>", mail.unsubscribe_url),
            )?)
            .raw_header(raw_header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click",
            )?);
    }

    for (name, value) in &mail.headers {
        if RESERVED_HEADERS
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "extra header {name:?} would override a header the mailer sets"
            ));
        }
        builder = builder.raw_header(raw_header(name, value)?);
    }

    let built = match (mail.text_body.is_empty(), mail.html_body.is_empty()) {
        (false, false) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text_body.clone(),
            mail.html_body.clone(),
        )),
        (false, true) => builder.singlepart(SinglePart::plain(mail.text_body.clone())),
        (true, false) => builder.singlepart(SinglePart::html(mail.html_body.clone())),
        // An empty campaign mail is a bug upstream; sending it would only annoy the recipient.
        (true, true) => return Err("mail has neither a text nor an HTML body".to_owned()),
    };
    built.map_err(|err| format!("cannot build message: {err}"))
}

/// lettre's `Response` has no `Display`; render it the way it appeared on the wire
/// (`"250 2.0.0 Ok: queued as ..."`), multi-line replies joined by spaces.
fn response_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
        .trim_end()
        .to_owned()
}

/// 5xx → `Permanent`; everything else, including errors lettre does not tie to a reply code
/// (connection refused, timeout, TLS, client-side protocol errors), → `Transient`, because
/// wrongly retrying costs a delay while wrongly giving up loses the recipient.
fn classify_relay_error(err: &RelayError) -> SendOutcome {
    let reason = err.to_string();
    if err.is_permanent() {
        SendOutcome::Permanent { reason }
    } else {
        SendOutcome::Transient { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_urls_parse_and_bad_ones_do_not() {
        let dir = Path::new("/nonexistent-unused");
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://user:p%40ss@mail.example.com:587?tls=starttls",
            "smtp://mail.example.com?tls=opportunistic",
            "smtps://user:pass@mail.example.com:465",
        ] {
            assert!(Mailer::from_settings(Some(url), dir).is_ok(), "{url}");
        }
        for url in ["http://mail.example.com", "smtp://h?tls=bogus", "not a url"] {
            assert!(
                matches!(
                    Mailer::from_settings(Some(url), dir),
                    Err(MailerError::InvalidUrl(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn password_is_not_echoed_in_url_errors() {
        let err = Mailer::from_settings(Some("ftp://u:hunter2@h"), Path::new("/x")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn header_names_are_checked() {
        assert!(raw_header("X-CRM-Campaign", "1").is_ok());
        assert!(raw_header("X-Bad\r\nBcc", "1").is_err());
        assert!(raw_header("", "1").is_err());
    }
}
