//! What engagement tracking does to a message and records of it: the links
//! of an HTML body are rewritten to go through the tracking listener (each
//! signed, so the listener only ever redirects to a link a message
//! carried), an invisible image reports the open, and each open, click,
//! bounce, complaint and unsubscribe is one engagement.

/// What a recipient did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engagement {
    /// The tracking image loaded.
    Opened,
    /// A link was followed.
    Clicked,
    /// Unsubscribed through the message.
    Unsubscribed,
    /// Bounced, hard or soft.
    Bounced,
    /// Marked as spam.
    Complained,
}

/// Every engagement with its stored name.
pub const ENGAGEMENTS: &[(Engagement, &str)] = &[
    (Engagement::Opened, "OPENED"),
    (Engagement::Clicked, "CLICKED"),
    (Engagement::Unsubscribed, "UNSUBSCRIBED"),
    (Engagement::Bounced, "BOUNCED"),
    (Engagement::Complained, "COMPLAINED"),
];

/// How many engaged, and how often.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngagementCounts {
    /// Recipients who opened.
    pub unique_opens: i64,
    /// Opens.
    pub opens: i64,
    /// Recipients who clicked.
    pub unique_clicks: i64,
    /// Clicks.
    pub clicks: i64,
    /// Recipients who unsubscribed.
    pub unsubscribes: i64,
    /// Bounced messages.
    pub bounces: i64,
    /// Complaints.
    pub complaints: i64,
}

impl EngagementCounts {
    /// Adds `total` engagements of `kind` by `unique` recipients.
    pub fn add(&mut self, kind: Engagement, total: i64, unique: i64) {
        match kind {
            Engagement::Opened => {
                self.opens += total;
                self.unique_opens += unique;
            }
            Engagement::Clicked => {
                self.clicks += total;
                self.unique_clicks += unique;
            }
            Engagement::Unsubscribed => self.unsubscribes += unique,
            Engagement::Bounced => self.bounces += unique,
            Engagement::Complained => self.complaints += unique,
        }
    }
}

/// The HTML body with every `href` to an http(s) address that `rewrite`
/// gives a replacement for replaced (the address as written, entities such
/// as `&amp;` decoded, is what `rewrite` sees; its answer is escaped back).
pub fn rewrite_links(html: &str, rewrite: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut rest = html;
    while let Some(at) = find_href(rest) {
        let (before, after) = rest.split_at(at.value_start);
        out.push_str(before);
        let value = &after[..at.value_len];
        let url = decode_entities(value);
        let is_web = url.starts_with("http://") || url.starts_with("https://");
        match rewrite(&url).filter(|_| is_web) {
            Some(tracked) => out.push_str(&tracked.replace('&', "&amp;").replace(at.quote, "")),
            None => out.push_str(value),
        }
        rest = &after[at.value_len..];
    }
    out.push_str(rest);
    out
}

/// An attribute's value with the entities an HTML escaper writes (minijinja
/// escapes `& < > " ' /`) decoded.
pub fn decode_entities(value: &str) -> String {
    [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#x27;", "'"),
        ("&#39;", "'"),
        ("&#x2f;", "/"),
        ("&#x2F;", "/"),
        ("&#47;", "/"),
        // Last, so "&amp;lt;" stays "&lt;".
        ("&amp;", "&"),
    ]
    .iter()
    .fold(value.to_owned(), |text, (entity, plain)| {
        text.replace(entity, plain)
    })
}

/// Where the next `href="..."` (or `'...'`) value is.
struct Href {
    value_start: usize,
    value_len: usize,
    quote: char,
}

fn find_href(html: &str) -> Option<Href> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("href") {
        let mut i = from + found + 4;
        let bytes = lower.as_bytes();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i] as char;
                let value_start = i + 1;
                if let Some(len) = html[value_start..].find(quote) {
                    return Some(Href {
                        value_start,
                        value_len: len,
                        quote,
                    });
                }
            }
        }
        from += found + 4;
    }
    None
}

/// The HTML body with the tracking image added (before `</body>` when it
/// has one, else at the end).
pub fn add_open_pixel(html: &str, pixel_url: &str) -> String {
    let image = format!(
        r#"<img src="{}" width="1" height="1" alt="" style="display:none">"#,
        pixel_url.replace('&', "&amp;")
    );
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{image}{}", &html[..at], &html[at..]),
        None => format!("{html}{image}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_links_are_rewritten_and_everything_else_kept() {
        let html = r#"<a href="https://acme.example/a?x=1&amp;y=2">A</a> <A HREF = 'http://b.example'>B</A> <a href="mailto:x@y.z">m</a> <a href="https://keep.example">k</a>"#;
        let out = rewrite_links(html, |url| {
            (url != "https://keep.example").then(|| format!("https://t.example/c?u={url}"))
        });
        assert_eq!(
            out,
            r#"<a href="https://t.example/c?u=https://acme.example/a?x=1&amp;y=2">A</a> <A HREF = 'https://t.example/c?u=http://b.example'>B</A> <a href="mailto:x@y.z">m</a> <a href="https://keep.example">k</a>"#
        );
    }

    #[test]
    fn escaped_links_are_seen_as_written() {
        let html = r#"<a href="https:&#x2f;&#x2f;portal.example&#x2f;me?a=1&amp;b=2">P</a>"#;
        let out = rewrite_links(html, |url| Some(format!("https://t.example/c?u={url}")));
        assert_eq!(
            out,
            r#"<a href="https://t.example/c?u=https://portal.example/me?a=1&amp;b=2">P</a>"#
        );
        assert_eq!(decode_entities("&amp;lt;"), "&lt;");
    }

    #[test]
    fn the_pixel_goes_before_the_end_of_the_body() {
        assert_eq!(
            add_open_pixel("<html><body>Hi</body></html>", "https://t/o?a=1&b=2"),
            r#"<html><body>Hi<img src="https://t/o?a=1&amp;b=2" width="1" height="1" alt="" style="display:none"></body></html>"#
        );
        assert!(add_open_pixel("<p>Hi</p>", "https://t/o").starts_with("<p>Hi</p><img"));
    }

    #[test]
    fn counts_keep_totals_and_recipients_apart() {
        let mut counts = EngagementCounts::default();
        counts.add(Engagement::Opened, 5, 2);
        counts.add(Engagement::Clicked, 3, 1);
        counts.add(Engagement::Bounced, 1, 1);
        assert_eq!(
            (
                counts.opens,
                counts.unique_opens,
                counts.clicks,
                counts.unique_clicks,
                counts.bounces
            ),
            (5, 2, 3, 1, 1)
        );
    }
}
