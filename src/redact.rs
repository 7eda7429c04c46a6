//! What may be shown of a URL: never its credentials.
//!
//! A URL may carry `user:password@` or a signed query (`txSecret`, `usersig`, tokens). Every
//! URL in an error, a log line, a journal note or a report goes through [`redact_url`].

/// The URL with its user info and query replaced by `***`; anything that does not parse as
/// a URL is returned up to its first `?` or `@`-prefixed part.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.has_host() || url.scheme() == "file" => {
            if !url.username().is_empty() || url.password().is_some() {
                let _ = url.set_username("***");
                let _ = url.set_password(None);
            }
            if url.query().is_some() {
                url.set_query(Some("***"));
            }
            url.set_fragment(None);
            url.to_string()
        }
        _ => {
            let head = raw.split('?').next().unwrap_or(raw);
            match head.split_once("://").zip(head.rfind('@')) {
                Some(((scheme, _), at)) => format!("{scheme}://***@{}", &head[at + 1..]),
                None => head.to_owned(),
            }
        }
    }
}

/// `text` with every URL in it redacted as [`redact_url`] does: for messages written by
/// others (GStreamer's log, an element's error) that may quote the URL they opened.
pub fn redact_urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`');
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at..].find(ends).map_or(rest.len(), |i| at + i);
        // A URL often ends a sentence or sits in brackets: those are not part of it.
        let url = rest[scheme_start..end].trim_end_matches([',', '.', ')', ']', ';']);
        shown.push_str(&rest[..scheme_start]);
        if scheme_start == at {
            shown.push_str("://");
            rest = &rest[at + 3..];
            continue;
        }
        shown.push_str(&redact_url(url));
        rest = &rest[scheme_start + url.len()..];
    }
    shown.push_str(rest);
    shown
}

/// A database connection string as it may be shown: every password masked, in each form
/// libpq and tokio-postgres take — `user:password@` in a URL, a `password=` or
/// `sslpassword=` query parameter, or a `password=...` word of the key-value form.
pub fn redact_store_url(raw: &str) -> String {
    let secret = |key: &str| key.to_ascii_lowercase().contains("password");
    if let Ok(mut url) = url::Url::parse(raw)
        && url.has_host()
    {
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.set_fragment(None);
        return url.to_string();
    }
    if raw.contains("://") {
        // A URL the parser refuses: nothing after its scheme can be told apart safely.
        return format!("{}://***", raw.split("://").next().unwrap_or_default());
    }
    // The key-value form: `host=h user=u password='p q'`.
    let mut shown = Vec::new();
    let mut words = raw.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let Some((key, value)) = word.split_once('=') else {
            shown.push(word.to_owned());
            continue;
        };
        if !secret(key) {
            shown.push(word.to_owned());
            continue;
        }
        // A quoted value may hold spaces: skip to its closing quote.
        if value.starts_with('\'') && (value.len() == 1 || !value.ends_with('\'')) {
            for rest in words.by_ref() {
                if rest.ends_with('\'') {
                    break;
                }
            }
        }
        shown.push(format!("{key}=***"));
    }
    shown.join(" ")
}

#[cfg(test)]
mod tests {
    use super::{redact_store_url, redact_url, redact_urls_in};

    #[test]
    fn urls_quoted_in_messages_lose_their_credentials() {
        let text = "File not found (404), URL: http://bob:hunter2@cdn.example/a.flv?token=s3cret, Redirect to: (NULL)";
        let shown = redact_urls_in(text);
        assert_eq!(
            shown,
            "File not found (404), URL: http://***@cdn.example/a.flv?***, Redirect to: (NULL)"
        );
        assert_eq!(
            redact_urls_in("opening 'rtmp://r.example/live/s?txSecret=abc'"),
            "opening 'rtmp://r.example/live/s?***'"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert_eq!(redact_urls_in("odd :// alone"), "odd :// alone");
    }

    #[test]
    fn store_passwords_never_show_in_any_form() {
        for (raw, shown) in [
            (
                "postgres://cf:hunter2@db.example:5432/callfeed",
                "postgres://cf:***@db.example:5432/callfeed",
            ),
            (
                "postgres://cf@db.example/callfeed?password=hunter2&sslmode=require",
                "postgres://cf@db.example/callfeed?password=***&sslmode=require",
            ),
            (
                "postgresql://cf@db.example/callfeed?sslpassword=hunter2",
                "postgresql://cf@db.example/callfeed?sslpassword=***",
            ),
            (
                "host=db.example user=cf password=hunter2 dbname=callfeed",
                "host=db.example user=cf password=*** dbname=callfeed",
            ),
            (
                "host=db.example password='hunter2 and more' dbname=callfeed",
                "host=db.example password=*** dbname=callfeed",
            ),
            ("postgres://cf:hunter2@[bad/callfeed", "postgres://***"),
        ] {
            assert_eq!(redact_store_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact_url("rtmp://bob:hunter2@relay.example.com/live/s?txSecret=abc&txTime=1"),
            "rtmp://***@relay.example.com/live/s?***"
        );
        assert_eq!(
            redact_url("https://a.example.com/x.mp4"),
            "https://a.example.com/x.mp4"
        );
        assert_eq!(redact_url("srt://u:p@:9000"), "srt://***@:9000");
        assert!(!redact_url("http://x:secret@[::1]:80/a").contains("secret"));
    }
}
