//! What a session request is checked for before it is admitted, so a file that cannot be
//! played is refused at once, not after a call has been placed: its size (headers and
//! parsers only, nothing decoded), and whether it holds anything to play at all.

use crate::media::bounds::InputBounds;
use crate::media::contract::Contract;
use crate::media::input::{InputItem, InputSpec};
use crate::media::sizes::{caps_size, check_cover, check_local};

use super::report::ProbeError;

/// The local files of `spec` are no larger than `bounds` allow (headers and parsers only,
/// nothing decoded): what a session request is checked for before it is admitted, so a
/// file too large is refused at once, not after a call has been placed. Other inputs (and
/// files that cannot be read) are left to the probe. Blocking.
pub fn check_size(
    spec: &InputSpec,
    contract: Contract,
    bounds: InputBounds,
) -> Result<(), ProbeError> {
    if let InputSpec::Speech(words) = spec {
        let chars = words.text.chars().count();
        if chars > bounds.speech_chars() {
            return Err(ProbeError {
                input: spec.describe(),
                reason: format!(
                    "the text is {chars} characters; this server speaks at most {} at a time (--max-speech-chars): split it into a queue of shorter ones",
                    bounds.speech_chars()
                ),
            });
        }
    }
    for item in spec.items() {
        let InputItem::Uri(uri) = item else {
            continue;
        };
        let Some(path) = url::Url::parse(&uri)
            .ok()
            .filter(|u| u.scheme() == "file")
            .and_then(|u| u.to_file_path().ok())
        else {
            continue;
        };
        let fail = |reason: String| ProbeError {
            input: path.display().to_string(),
            reason,
        };
        if check_local(&path, bounds).map_err(fail)?.is_some() {
            continue;
        }
        // Not a picture: a file with nothing to play, or cut short, is refused now.
        super::extent::admit(&path).map_err(fail)?;
        // Its streams as the parsers describe them.
        let Ok((streams, tags)) = super::scan::streams(&path) else {
            continue;
        };
        let mut video = false;
        for caps in &streams {
            if let Some((width, height)) = caps_size(caps) {
                video = true;
                bounds
                    .check("video", width, height)
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        let cover = super::report::cover_art(Some(&tags));
        if !video
            && contract.video.is_some()
            && let Some(cover) = cover
        {
            check_cover(&cover.data, bounds).map_err(fail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::contract::Profile;

    #[test]
    fn a_text_longer_than_the_nodes_limit_is_refused_with_both_lengths() {
        let words = InputSpec::parse_syntax("tts:one two three four").unwrap();
        let contract = Contract::new(Profile::Audio);
        assert!(check_size(&words, contract, InputBounds::default()).is_ok());
        let tight = InputBounds::default().with_speech_chars(10);
        let refused = check_size(&words, contract, tight).unwrap_err();
        assert!(
            refused.reason.contains("18 characters") && refused.reason.contains("at most 10"),
            "{refused}"
        );
    }
}
