//! Turning a raw inbound RFC 5322 email into an [`InboundMail`] that the
//! support service can open a ticket from or append as a comment.
//!
//! Parsing is delegated to `mail-parser`, which is deliberately lenient; this
//! module adds the stricter checks the service needs (a real header section,
//! a usable sender address, a size limit) and the support-specific
//! normalisation (quoted-history stripping, auto-reply detection, ticket
//! numbers in subjects).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders};
use sha2::{Digest, Sha256};

/// Default upper bound for a raw message, used by [`parse_inbound`].
///
/// Ten MiB keeps a single inbound message from tying up memory and CPU while
/// still admitting typical screenshots and PDFs.
pub const DEFAULT_MAX_BYTES: usize = 10 * 1024 * 1024;

/// Subject used when the message has none, so tickets always have a title.
pub const NO_SUBJECT: &str = "(no subject)";

/// The request field every [`MailError`] is reported against.
const RAW_MESSAGE_FIELD: &str = "raw_message";

/// An inbound email reduced to what the support service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMail {
    /// The `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// Message ids from `In-Reply-To`, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// Message ids from `References`, without angle brackets, oldest first.
    pub references: Vec<String>,
    /// The sender's address, lower-cased so it can be matched to a contact.
    pub from_email: String,
    /// The sender's display name, decoded; `None` when absent or blank.
    pub from_name: Option<String>,
    /// The decoded, trimmed subject, or [`NO_SUBJECT`] when absent or empty.
    pub subject: String,
    /// Plain-text body with quoted reply history stripped, trimmed; may be
    /// empty.
    pub body: String,
    /// Files attached to (or embedded inline in) the message.
    pub attachments: Vec<Attachment>,
    /// When the sender says the message was written (`Date` header), if it
    /// could be parsed.
    pub sent_at: Option<DateTime<Utc>>,
    /// True for machine-generated mail (auto-replies, bounces, bulk mail):
    /// the service must not open tickets or auto-respond to these, or two
    /// autoresponders can mail each other forever.
    pub auto_submitted: bool,
}

/// Metadata of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name without any directory part; a generated name when the
    /// message gives none.
    pub file_name: String,
    /// Lower-cased `type/subtype`.
    pub content_type: String,
    /// Size of the decoded content in bytes.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the decoded content, for de-duplication and
    /// integrity checks. Text attachments are hashed as the UTF-8 text
    /// `mail-parser` decodes them to.
    pub sha256_hex: String,
}

/// Why a raw message was rejected.
///
/// Every variant concerns the same request field, see [`MailError::field`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The input had no bytes (or only whitespace).
    #[error("raw message is empty")]
    Empty,
    /// The input exceeded the configured size limit.
    #[error("raw message is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the rejected input in bytes.
        size: usize,
        /// The limit that was in force.
        limit: usize,
    },
    /// The input does not start with an RFC 5322 header section.
    #[error("raw message is not an email message: no header section found")]
    NotAMessage,
    /// The message has no `From` header.
    #[error("raw message has no From header")]
    MissingFrom,
    /// The `From` header holds no usable email address.
    #[error("raw message From header has no valid email address")]
    InvalidFrom,
}

impl MailError {
    /// The API request field to name in an INVALID_ARGUMENT field violation.
    ///
    /// Always `"raw_message"`: every failure here is about the one raw input.
    pub fn field(&self) -> &'static str {
        RAW_MESSAGE_FIELD
    }
}

/// Parses a raw RFC 5322 message with the [`DEFAULT_MAX_BYTES`] size limit.
pub fn parse_inbound(raw: &[u8]) -> Result<InboundMail, MailError> {
    parse_inbound_with_limit(raw, DEFAULT_MAX_BYTES)
}

/// Parses a raw RFC 5322 message, rejecting inputs longer than `max_bytes`.
///
/// A message with an empty body and no attachments is accepted; input
/// without a header section or without a valid `From` address is not.
pub fn parse_inbound_with_limit(raw: &[u8], max_bytes: usize) -> Result<InboundMail, MailError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(MailError::Empty);
    }
    // Checked before parsing so oversized input costs nothing.
    if raw.len() > max_bytes {
        return Err(MailError::TooLarge {
            size: raw.len(),
            limit: max_bytes,
        });
    }
    // mail-parser accepts almost anything, so require a header-shaped first
    // line ourselves before trusting its result.
    if !starts_with_header_field(raw) {
        return Err(MailError::NotAMessage);
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MailError::NotAMessage)?;
    // `Message` accessors index `parts[0]`; make sure it exists and holds
    // headers before calling any of them.
    let root = message.parts.first().ok_or(MailError::NotAMessage)?;
    if root.headers.is_empty() {
        return Err(MailError::NotAMessage);
    }

    let (from_email, from_name) = sender(root)?;
    let subject = message
        .subject()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(NO_SUBJECT)
        .to_string();

    Ok(InboundMail {
        message_id: message.message_id().and_then(clean_message_id),
        in_reply_to: message_ids(message.in_reply_to()),
        references: message_ids(message.references()),
        from_email,
        from_name,
        subject,
        body: strip_quoted_history(&body_text(&message)),
        attachments: attachments(&message),
        sent_at: message
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0)),
        auto_submitted: is_auto_submitted(root, raw),
    })
}

/// The ticket number a subject refers to.
///
/// `"[#1042]"`, `"#1042"` and `"Re: Ticket #1042 ..."` all give `Some(1042)`.
/// A candidate is `#` followed by 1..=18 ASCII digits that end at a word
/// boundary (so `"#12abc"` is not one); the first candidate in the subject
/// wins. Eighteen digits always fit in a `u64`; longer runs are rejected
/// rather than truncated.
pub fn ticket_number_in_subject(subject: &str) -> Option<u64> {
    subject.match_indices('#').find_map(|(hash, _)| {
        let rest = &subject[hash + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=18).contains(&digits) {
            return None;
        }
        // Digits are ASCII, so `digits` is a char boundary.
        let at_boundary = rest[digits..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if !at_boundary {
            return None;
        }
        rest[..digits].parse().ok()
    })
}

/// True when the first line (after an optional mbox `From ` envelope line)
/// looks like `field-name:`, i.e. printable ASCII without spaces or colons,
/// optionally followed by obsolete whitespace before the colon.
fn starts_with_header_field(raw: &[u8]) -> bool {
    let mut lines = raw.split(|&b| b == b'\n');
    let mut first = lines.next().unwrap_or_default();
    // Some MTAs hand over messages with the mbox separator still attached.
    if first.starts_with(b"From ") {
        first = lines.next().unwrap_or_default();
    }
    let Some(colon) = first.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = first[..colon].trim_ascii_end();
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
}

/// The first valid sender address (lower-cased) and its display name.
fn sender(root: &MessagePart<'_>) -> Result<(String, Option<String>), MailError> {
    let header = root
        .headers
        .iter()
        .find(|h| h.name == HeaderName::From)
        .ok_or(MailError::MissingFrom)?;
    let addr = header
        .value
        .as_address()
        .and_then(|list| {
            list.iter()
                .find(|a| a.address().is_some_and(is_valid_address))
        })
        .ok_or(MailError::InvalidFrom)?;
    let email = addr
        .address()
        .ok_or(MailError::InvalidFrom)?
        .trim()
        .to_lowercase();
    let name = addr
        .name()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Ok((email, name))
}

/// Deliberately simple address check: exactly one `@`, a non-empty local
/// part, and a domain that is a dotted name or a bracketed literal. Enough to
/// reject display-name-only or garbage `From` values without trying to
/// implement full RFC 5322 syntax.
fn is_valid_address(address: &str) -> bool {
    let address = address.trim();
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if local.is_empty() {
        return false;
    }
    let literal = domain.len() > 2 && domain.starts_with('[') && domain.ends_with(']');
    let dotted = domain.contains('.') && domain.split('.').all(|label| !label.is_empty());
    literal || dotted
}

/// Strips surrounding whitespace and angle brackets from a message id.
fn clean_message_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id).trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Message ids from an `In-Reply-To` / `References` value, in header order.
fn message_ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => clean_message_id(id).into_iter().collect(),
        HeaderValue::TextList(ids) => ids.iter().filter_map(|id| clean_message_id(id)).collect(),
        _ => Vec::new(),
    }
}

/// All inline text bodies joined, with line endings normalised to `\n`.
///
/// mail-parser lists a `text/plain` alternative here when there is one and
/// otherwise the HTML part, which `body_text` converts to plain text. Some
/// clients split one body around inline images, hence the join.
fn body_text(message: &Message<'_>) -> String {
    let text = (0..message.text_body.len())
        .filter_map(|i| message.body_text(i))
        .collect::<Vec<_>>()
        .join("\n");
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Cuts `text` at the start of quoted reply history and trims it.
///
/// The cut is made at the first line that is
/// - an attribution `On <date...> wrote:`: a line starting with `On ` that
///   ends with `wrote:`, or whose next line does (clients wrap long
///   attributions); it must contain a digit, as the date always does, to
///   spare ordinary sentences;
/// - a `-----Original Message-----` separator (any dash count, any case);
/// - an Outlook header block: `From: ...` right after a blank line (or after
///   a `_____` rule, which is then cut too) with text above it;
/// - the start of a tail in which every non-blank line starts with `>`.
///
/// If nothing would be left, the whole text is kept: a message consisting
/// only of a quote still says something.
fn strip_quoted_history(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let original = text.trim();
    let Some(cut) = (0..lines.len()).find_map(|i| quote_start(&lines, i)) else {
        return original.to_string();
    };
    let kept = lines[..cut].join("\n");
    let kept = kept.trim();
    if kept.is_empty() {
        original.to_string()
    } else {
        kept.to_string()
    }
}

/// If quoted history starts at line `i`, the index to cut at.
fn quote_start(lines: &[&str], i: usize) -> Option<usize> {
    let line = lines[i].trim();
    let next = lines.get(i + 1).map_or("", |l| l.trim());

    let attribution = line.starts_with("On ")
        && (line.ends_with("wrote:") || next.ends_with("wrote:"))
        && (line.bytes().any(|b| b.is_ascii_digit()) || next.bytes().any(|b| b.is_ascii_digit()));
    if attribution {
        return Some(i);
    }

    let dashes = line.starts_with("---")
        && line
            .trim_matches(|c: char| c == '-' || c.is_whitespace())
            .eq_ignore_ascii_case("original message");
    if dashes {
        return Some(i);
    }

    if line.starts_with("From:") && i >= 1 {
        let prev = lines[i - 1].trim();
        let text_above = |end: usize| lines[..end].iter().any(|l| !l.trim().is_empty());
        if prev.is_empty() && text_above(i - 1) {
            return Some(i);
        }
        if prev.len() >= 10 && prev.chars().all(|c| c == '_') && text_above(i - 1) {
            return Some(i - 1);
        }
    }

    let quoted = |l: &&str| l.trim_start().starts_with('>');
    let tail_all_quoted = lines[i..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .all(quoted);
    if quoted(&lines[i]) && tail_all_quoted {
        return Some(i);
    }
    None
}

/// Metadata for every attachment, including inline images and attached
/// messages.
fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    message
        .attachments()
        .enumerate()
        .map(|(index, part)| {
            let content_type = content_type(part);
            let bytes = part.contents();
            Attachment {
                file_name: part
                    .attachment_name()
                    .and_then(safe_file_name)
                    .unwrap_or_else(|| fallback_file_name(index, &content_type)),
                content_type,
                size_bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                sha256_hex: sha256_hex(bytes),
            }
        })
        .collect()
}

/// Lower-cased `type/subtype` with RFC 2045 defaults when absent.
fn content_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None if part.is_message() => "message/rfc822".to_string(),
        None if part.is_text() => "text/plain".to_string(),
        None => "application/octet-stream".to_string(),
    }
}

/// The last path segment of a sender-supplied name without control
/// characters, so it cannot steer where the service stores the file.
fn safe_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then(|| cleaned.to_string())
}

/// A stable name for an unnamed attachment, e.g. `attachment-2.eml`.
fn fallback_file_name(index: usize, content_type: &str) -> String {
    let ext = match content_type {
        "message/rfc822" => ".eml",
        "text/plain" => ".txt",
        _ => "",
    };
    format!("attachment-{}{ext}", index + 1)
}

/// Lower-case hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Detects machine-generated mail from its headers:
/// - `Auto-Submitted` other than `no` (RFC 3834);
/// - `Precedence: bulk | junk | list | auto_reply`;
/// - `X-Autoreply` other than `no`, any `X-Autorespond`, `X-Autogenerated`;
/// - `X-Auto-Response-Suppress` naming `All`, `OOF` or `AutoReply` (Exchange
///   sets it on its out-of-office replies);
/// - a null `Return-Path: <>` (bounces, RFC 5321);
/// - `Content-Type: multipart/report` (delivery and read reports).
///
/// Subjects ("Out of office", "Automatic reply") are not used: too easy to
/// match real customer mail.
fn is_auto_submitted(root: &MessagePart<'_>, raw: &[u8]) -> bool {
    let values = |name: &str| header_values(root, raw, name).into_iter();
    // First token, ignoring parameters (`;`) and comments (`(...)`).
    let keyword = |v: &str| {
        v.split([';', '(', ' ', '\t', '\r', '\n'])
            .next()
            .unwrap_or_default()
            .to_string()
    };

    values("Auto-Submitted").any(|v| {
        let k = keyword(&v);
        !k.is_empty() && k != "no"
    }) || values("Precedence").any(|v| {
        matches!(
            keyword(&v).as_str(),
            "bulk" | "junk" | "list" | "auto_reply"
        )
    }) || values("X-Autoreply").any(|v| keyword(&v) != "no")
        || values("X-Autorespond").next().is_some()
        || values("X-Autogenerated").next().is_some()
        || values("X-Auto-Response-Suppress").any(|v| {
            v.split([',', ' ', '\t', '\r', '\n'])
                .any(|t| matches!(t, "all" | "oof" | "autoreply"))
        })
        || values("Return-Path").any(|v| v == "<>")
        || root.is_content_type("multipart", "report")
}

/// Trimmed, lower-cased raw values of every root header called `name`
/// (case-insensitive), read from the raw bytes because mail-parser reduces
/// some structured values (e.g. `Return-Path: <>`) to nothing.
fn header_values(root: &MessagePart<'_>, raw: &[u8], name: &str) -> Vec<String> {
    root.headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| {
            let value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            String::from_utf8_lossy(value).trim().to_ascii_lowercase()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> InboundMail {
        parse_inbound(raw).unwrap()
    }

    fn err(raw: &[u8]) -> MailError {
        let e = parse_inbound(raw).unwrap_err();
        assert_eq!(e.field(), "raw_message");
        assert!(!e.to_string().is_empty());
        e
    }

    #[test]
    fn simple_plain_message() {
        let mail = parse(
            b"Return-Path: <alice@example.com>\r\n\
Message-ID: <CAF1234.5678@mail.example.com>\r\n\
Date: Tue, 14 Jan 2025 09:30:00 +0100\r\n\
From: Alice Smith <alice@example.com>\r\n\
To: support@crm.example\r\n\
Subject:   Printer on floor 3 is jammed  \r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hi,\r\n\
\r\n\
the printer on floor 3 is jammed again.\r\n\
\r\n\
Thanks, Alice\r\n",
        );
        assert_eq!(
            mail.message_id.as_deref(),
            Some("CAF1234.5678@mail.example.com")
        );
        assert_eq!(mail.from_email, "alice@example.com");
        assert_eq!(mail.from_name.as_deref(), Some("Alice Smith"));
        assert_eq!(mail.subject, "Printer on floor 3 is jammed");
        assert_eq!(
            mail.body,
            "Hi,\n\nthe printer on floor 3 is jammed again.\n\nThanks, Alice"
        );
        assert!(mail.in_reply_to.is_empty());
        assert!(mail.references.is_empty());
        assert!(mail.attachments.is_empty());
        assert!(!mail.auto_submitted);
        let sent = mail.sent_at.unwrap();
        assert_eq!(sent.to_rfc3339(), "2025-01-14T08:30:00+00:00");
    }

    #[test]
    fn missing_subject_and_empty_body_are_allowed() {
        let mail = parse(b"From: bob@example.org\r\nTo: support@crm.example\r\n\r\n");
        assert_eq!(mail.subject, NO_SUBJECT);
        assert_eq!(mail.body, "");
        assert_eq!(mail.from_name, None);
        assert_eq!(mail.message_id, None);
        assert_eq!(mail.sent_at, None);
    }

    #[test]
    fn multipart_alternative_prefers_text() {
        let mail = parse(
            b"From: carol@example.com\r\n\
Subject: Invoice question\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Plain version of the question.\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>HTML <b>version</b> of the question.</p></body></html>\r\n\
--b1--\r\n",
        );
        assert_eq!(mail.body, "Plain version of the question.");
        assert!(mail.attachments.is_empty());
    }

    #[test]
    fn html_only_is_converted_to_text() {
        let mail = parse(
            b"From: Dave <dave@example.com>\r\n\
Subject: Login broken\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><style>p { color: red; }</style></head>\r\n\
<body><p>I cannot <b>log in</b> since &quot;yesterday&quot;.</p>\r\n\
<div>Regards,<br>Dave</div></body></html>\r\n",
        );
        assert!(!mail.body.contains('<'), "{}", mail.body);
        assert!(!mail.body.contains('>'), "{}", mail.body);
        assert!(mail.body.contains("I cannot log in since \"yesterday\"."));
        assert!(mail.body.contains("Dave"));
        assert!(!mail.body.contains("color"));
    }

    #[test]
    fn rfc2047_subject_and_from_name_are_decoded() {
        let mail = parse(
            b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.DE>\r\n\
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4g4oCTIERydWNrZXIgZGVmZWt0?=\r\n\
\r\n\
Hallo\r\n",
        );
        assert_eq!(
            mail.subject,
            "Gr\u{fc}\u{df}e aus M\u{fc}nchen \u{2013} Drucker defekt"
        );
        assert_eq!(mail.from_name.as_deref(), Some("J\u{fc}rgen M\u{fc}ller"));
        assert_eq!(mail.from_email, "juergen@example.de");
    }

    #[test]
    fn quoted_printable_utf8_body() {
        let mail = parse(
            b"From: kunde@example.de\r\n\
Subject: Drucker\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Der Drucker zeigt =C3=BCberall Fehler, sch=C3=B6n ist das nicht. Ein sehr lan=\r\n\
ger Satz.\r\n\
Gr=C3=BC=C3=9Fe\r\n",
        );
        assert_eq!(
            mail.body,
            "Der Drucker zeigt \u{fc}berall Fehler, sch\u{f6}n ist das nicht. Ein sehr langer Satz.\nGr\u{fc}\u{df}e"
        );
    }

    #[test]
    fn attachment_metadata() {
        let mail = parse(
            b"From: erin@example.com\r\n\
Subject: Invoice attached\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"mix\"\r\n\
\r\n\
--mix\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
See the attached invoice.\r\n\
--mix\r\n\
Content-Type: application/PDF; name=\"ignored.pdf\"\r\n\
Content-Disposition: attachment; filename=\"../../invoice-1042.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJXRlc3QgaW52b2ljZSAxMDQyCg==\r\n\
--mix--\r\n",
        );
        assert_eq!(mail.body, "See the attached invoice.");
        assert_eq!(
            mail.attachments,
            vec![Attachment {
                file_name: "invoice-1042.pdf".to_string(),
                content_type: "application/pdf".to_string(),
                size_bytes: 28,
                sha256_hex: "72a17e8c25292d6aafd542a234d0b0fe70de75fd98c2dfcd018ac1ccb7e1fb55"
                    .to_string(),
            }]
        );
    }

    #[test]
    fn reply_threading_and_gmail_quote_stripped() {
        let mail = parse(
            b"From: Frank <frank@example.com>\r\n\
To: support@crm.example\r\n\
Subject: Re: [#1042] Printer\r\n\
Message-ID: <reply-2@example.com>\r\n\
In-Reply-To: <ticket-1042-c1@crm.example>\r\n\
References: <ticket-1042@crm.example>\r\n\
\x20<ticket-1042-c1@crm.example>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Still broken after the restart.\r\n\
\r\n\
On Mon, Jan 13, 2025 at 10:00 AM Support Team <support@crm.example>\r\n\
wrote:\r\n\
\r\n\
> Please restart the printer.\r\n\
>\r\n\
> Regards\r\n",
        );
        assert_eq!(mail.message_id.as_deref(), Some("reply-2@example.com"));
        assert_eq!(mail.in_reply_to, vec!["ticket-1042-c1@crm.example"]);
        assert_eq!(
            mail.references,
            vec!["ticket-1042@crm.example", "ticket-1042-c1@crm.example"]
        );
        assert_eq!(mail.body, "Still broken after the restart.");
        assert_eq!(ticket_number_in_subject(&mail.subject), Some(1042));
    }

    #[test]
    fn outlook_original_message_stripped() {
        let mail = parse(
            b"From: grace@example.com\r\n\
Subject: RE: Ticket #77 VPN\r\n\
\r\n\
VPN works now, thank you!\r\n\
\r\n\
-----Original Message-----\r\n\
From: Support <support@crm.example>\r\n\
Sent: Monday, January 13, 2025 10:00 AM\r\n\
Subject: Ticket #77 VPN\r\n\
\r\n\
Please reinstall the client.\r\n",
        );
        assert_eq!(mail.body, "VPN works now, thank you!");
    }

    #[test]
    fn outlook_header_block_after_blank_line_stripped() {
        let text = "Works now.\n\nFrom: Support <support@crm.example>\nSent: Monday\n\nOld text";
        assert_eq!(strip_quoted_history(text), "Works now.");
        let ruled = "Works now.\n________________________________\nFrom: Support\nSent: Monday";
        assert_eq!(strip_quoted_history(ruled), "Works now.");
    }

    #[test]
    fn quote_stripping_edge_cases() {
        // Interleaved answers are kept; only an all-quoted tail goes.
        let inline = "> Is it on?\nYes.\n> Plugged in?\nYes.\n\n> Thanks\n> Bye";
        assert_eq!(
            strip_quoted_history(inline),
            "> Is it on?\nYes.\n> Plugged in?\nYes."
        );
        // A message that is nothing but a quote is kept whole.
        assert_eq!(strip_quoted_history("> only quoted"), "> only quoted");
        // "From:" as the very first line is not an Outlook block.
        assert_eq!(strip_quoted_history("From: me\nhello"), "From: me\nhello");
        // A sentence starting with "On " but without a date is not a quote.
        let sentence = "On the screen the printer\nwrote: error";
        assert_eq!(strip_quoted_history(sentence), sentence);
        assert_eq!(
            strip_quoted_history("Hi\nOn 2025-01-13, Bob wrote:\n> x"),
            "Hi"
        );
    }

    #[test]
    fn uppercase_from_is_lowercased() {
        let mail =
            parse(b"From: \"HELP Desk User\" <John.DOE@Example.COM>\r\nSubject: x\r\n\r\nbody\r\n");
        assert_eq!(mail.from_email, "john.doe@example.com");
        assert_eq!(mail.from_name.as_deref(), Some("HELP Desk User"));
    }

    #[test]
    fn auto_submitted_auto_replied() {
        let mail = parse(
            b"From: henry@example.com\r\n\
Subject: Automatic reply: [#1042] Printer\r\n\
Auto-Submitted: auto-replied (vacation)\r\n\
\r\n\
I am out of office until Monday.\r\n",
        );
        assert!(mail.auto_submitted);
    }

    #[test]
    fn auto_submitted_precedence_bulk() {
        let mail = parse(
            b"From: news@example.com\r\nSubject: Newsletter\r\nPrecedence: Bulk\r\n\r\nNews\r\n",
        );
        assert!(mail.auto_submitted);
    }

    #[test]
    fn auto_submitted_other_markers() {
        let cases: [&[u8]; 6] = [
            b"From: a@example.com\r\nX-Autoreply: yes\r\n\r\nx\r\n",
            b"From: a@example.com\r\nX-Autorespond: vacation\r\n\r\nx\r\n",
            b"From: a@example.com\r\nX-Auto-Response-Suppress: All\r\n\r\nx\r\n",
            b"From: a@example.com\r\nReturn-Path: <>\r\n\r\nx\r\n",
            b"From: a@example.com\r\nPrecedence: junk\r\n\r\nx\r\n",
            b"From: mailer-daemon@example.com\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\
\r\n\
--r\r\n\
Content-Type: text/plain\r\n\
\r\n\
Delivery failed.\r\n\
--r--\r\n",
        ];
        for raw in cases {
            assert!(
                parse(raw).auto_submitted,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let human = parse(
            b"From: a@example.com\r\nAuto-Submitted: no\r\nPrecedence: first-class\r\n\r\nx\r\n",
        );
        assert!(!human.auto_submitted);
    }

    #[test]
    fn mbox_envelope_line_is_tolerated() {
        let mail = parse(b"From ivy@example.com Mon Jan 13 10:00:00 2025\r\nFrom: ivy@example.com\r\nSubject: hi\r\n\r\nhello\r\n");
        assert_eq!(mail.from_email, "ivy@example.com");
    }

    #[test]
    fn error_empty_input() {
        assert_eq!(err(b""), MailError::Empty);
        assert_eq!(err(b" \r\n\r\n"), MailError::Empty);
    }

    #[test]
    fn error_random_binary_garbage() {
        let garbage: Vec<u8> = (0u32..512)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(err(&garbage), MailError::NotAMessage);
        assert_eq!(
            err(b"\x00\x01\xff\xfe\x89PNG\r\n\x1a\n"),
            MailError::NotAMessage
        );
    }

    #[test]
    fn error_text_without_headers() {
        assert_eq!(
            err(b"Hello support team,\r\nmy printer is broken: please help.\r\n"),
            MailError::NotAMessage
        );
        assert_eq!(err(b"\r\nFrom: a@example.com\r\n"), MailError::NotAMessage);
    }

    #[test]
    fn error_missing_from() {
        assert_eq!(
            err(b"To: support@crm.example\r\nSubject: who am I\r\n\r\nbody\r\n"),
            MailError::MissingFrom
        );
    }

    #[test]
    fn error_from_without_address() {
        for raw in [
            &b"From: John Doe\r\nSubject: x\r\n\r\nbody\r\n"[..],
            b"From: <>\r\nSubject: x\r\n\r\nbody\r\n",
            b"From: undisclosed-recipients:;\r\nSubject: x\r\n\r\nbody\r\n",
            b"From: john@localhost\r\nSubject: x\r\n\r\nbody\r\n",
            b"From: <@example.com>\r\nSubject: x\r\n\r\nbody\r\n",
        ] {
            assert_eq!(
                err(raw),
                MailError::InvalidFrom,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn error_over_size_limit() {
        let raw = b"From: a@example.com\r\nSubject: big\r\n\r\n0123456789\r\n";
        let e = parse_inbound_with_limit(raw, 20).unwrap_err();
        assert_eq!(
            e,
            MailError::TooLarge {
                size: raw.len(),
                limit: 20
            }
        );
        assert_eq!(e.field(), "raw_message");
        assert!(parse_inbound_with_limit(raw, raw.len()).is_ok());

        let mut big = b"From: a@example.com\r\n\r\n".to_vec();
        big.resize(DEFAULT_MAX_BYTES + 1, b'a');
        assert!(matches!(err(&big), MailError::TooLarge { .. }));
    }

    #[test]
    fn address_validation() {
        assert!(is_valid_address("a@example.com"));
        assert!(is_valid_address("a@[192.0.2.1]"));
        assert!(!is_valid_address("a@b@example.com"));
        assert!(!is_valid_address("@example.com"));
        assert!(!is_valid_address("a@example"));
        assert!(!is_valid_address("a@example..com"));
        assert!(!is_valid_address("a@"));
        assert!(!is_valid_address("a b@example.com"));
    }

    #[test]
    fn ticket_numbers() {
        assert_eq!(ticket_number_in_subject("Re: [#1042] Printer"), Some(1042));
        assert_eq!(ticket_number_in_subject("[#1042]"), Some(1042));
        assert_eq!(ticket_number_in_subject("#1042"), Some(1042));
        assert_eq!(
            ticket_number_in_subject("Re: Ticket #1042 printer"),
            Some(1042)
        );
        assert_eq!(ticket_number_in_subject("#12abc"), None);
        assert_eq!(ticket_number_in_subject("#12_a"), None);
        assert_eq!(ticket_number_in_subject("Printer broken"), None);
        assert_eq!(ticket_number_in_subject("# 12"), None);
        assert_eq!(ticket_number_in_subject(""), None);
        assert_eq!(ticket_number_in_subject("#1234567890123456789"), None);
        assert_eq!(
            ticket_number_in_subject("#999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        // Invalid candidates are skipped; the first valid one wins.
        assert_eq!(ticket_number_in_subject("#12abc then #7 and #8"), Some(7));
        assert_eq!(ticket_number_in_subject("Fwd: #5, #6"), Some(5));
        assert_eq!(ticket_number_in_subject("Gr\u{fc}\u{df}e #42\u{e4}"), None);
        assert_eq!(ticket_number_in_subject("\u{fc}#42."), Some(42));
    }
}
