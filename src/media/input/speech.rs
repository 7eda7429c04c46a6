//! `tts:TEXT`: words spoken by the node's speech engine (eSpeak NG), with `?voice=`,
//! `?rate=` and `?lang=` after the text. The text is only ever text: it goes to the engine
//! on its standard input, never on a command line, and markup (SSML) is taken only from
//! the user at a shell. Spoken once into the cache (`media::speech`), then played as the
//! file it became.

use super::spec::{Input, InputError, InputSpec, SpeechRequest, invalid};

/// The longest text taken at all, in characters (`--max-speech-chars` sets a node's own
/// limit under it; see `bounds`).
pub const MAX_SPEECH_CHARS: usize = 100_000;

pub(super) struct Speech<'a>(pub(super) &'a SpeechRequest);

impl Input for Speech<'_> {
    /// The engine is on this node: words for it are checked before anything rings.
    fn check_available(&self) -> Result<(), InputError> {
        if crate::media::speech::engine_installed() {
            Ok(())
        } else {
            Err(invalid(
                &self.describe(),
                "the speech engine eSpeak NG is not installed on this node: install Debian's espeak-ng (make setup)",
            ))
        }
    }

    fn is_live(&self) -> bool {
        false
    }

    fn is_replayable(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let shown: String = self.0.text.chars().take(40).collect();
        let more = if self.0.text.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        format!("tts:{shown}{more}")
    }
}

/// `TEXT[?voice=V&rate=N&lang=L]`: the options only when what follows the last `?` is all
/// options; otherwise the `?` is part of the text.
pub(super) fn parse(_spec: &str, rest: &str) -> Result<InputSpec, InputError> {
    let (text, options) = match rest.rsplit_once('?') {
        Some((text, options)) if is_options(options) => (text, Some(options)),
        _ => (rest, None),
    };
    let text = text.trim();
    let mut request = SpeechRequest {
        text: text.to_owned(),
        voice: None,
        rate: None,
        lang: None,
        markup: looks_like_markup(text),
    };
    let shown = || format!("tts:{}", text.chars().take(40).collect::<String>());
    if text.is_empty() {
        return Err(invalid(
            &shown(),
            "tts: needs words after it, e.g. tts:Hello",
        ));
    }
    if text.chars().count() > MAX_SPEECH_CHARS {
        return Err(invalid(
            &shown(),
            format!(
                "the text is longer than {MAX_SPEECH_CHARS} characters: split it into a queue of shorter ones"
            ),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(
            &shown(),
            "the text has control characters: send words only",
        ));
    }
    for (key, value) in options
        .into_iter()
        .flat_map(|o| o.split('&'))
        .filter_map(|p| p.split_once('='))
    {
        match key {
            "voice" | "lang" if is_name(value) => {
                let slot = if key == "voice" {
                    &mut request.voice
                } else {
                    &mut request.lang
                };
                *slot = Some(value.to_owned());
            }
            "rate" => {
                request.rate = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|r| (80..=450).contains(r))
                        .ok_or_else(|| {
                            invalid(
                                &shown(),
                                format!("rate `{value}`: words a minute, 80 to 450"),
                            )
                        })?,
                );
            }
            _ => {
                return Err(invalid(
                    &shown(),
                    format!(
                        "{key} `{value}`: a voice or language name as `callfeed voices` lists them"
                    ),
                ));
            }
        }
    }
    Ok(InputSpec::Speech(request))
}

/// Whether `options` is `key=value` pairs of the known keys only.
fn is_options(options: &str) -> bool {
    !options.is_empty()
        && options.split('&').all(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, _)| matches!(k, "voice" | "rate" | "lang"))
        })
}

/// A voice or language name as the engine spells them: letters, digits, `-`, `_`, `+`, `/`.
fn is_name(value: &str) -> bool {
    (1..=40).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/'))
}

/// Whether the text is (or holds) SSML: an element the engine would read as markup.
fn looks_like_markup(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("<speak")
        || (lower.contains('<') && lower.contains('>') && lower.contains("</"))
        || lower.contains("/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spoken(spec: &str) -> Result<SpeechRequest, InputError> {
        match parse(spec, spec.strip_prefix("tts:").unwrap())? {
            InputSpec::Speech(r) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_follow_the_text_and_anything_else_is_text() {
        let r = spoken("tts:one two three?voice=en-us&rate=160").unwrap();
        assert_eq!(
            (r.text.as_str(), r.voice.as_deref(), r.rate),
            ("one two three", Some("en-us"), Some(160))
        );
        let r = spoken("tts:Are you there? Say \"yes\"").unwrap();
        assert_eq!(r.text, "Are you there? Say \"yes\"");
        assert!(!r.markup);
        assert!(spoken("tts:<speak>hi</speak>").unwrap().markup);
        assert!(spoken("tts:hi?rate=5000").is_err());
        assert!(spoken("tts:hi?voice=$(reboot)").is_err());
        assert!(spoken("tts:a\u{7}b").is_err());
        assert!(spoken(&format!("tts:{}", "a".repeat(MAX_SPEECH_CHARS + 1))).is_err());
        assert!(spoken("tts:   ").is_err());
    }
}
