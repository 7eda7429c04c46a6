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

#[cfg(test)]
mod tests {
    use super::redact_url;

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
