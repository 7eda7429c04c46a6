//! `feed:ID`: a feed (a live input with a life of its own, shared by any number of calls)
//! named by its id. Nothing here plays it: the feed runs already, and a session takes its
//! stream from the registry that owns it.

use super::spec::{Input, InputError, InputSpec, invalid};

pub(super) struct Feed<'a>(pub(super) &'a str);

impl Input for Feed<'_> {
    fn describe(&self) -> String {
        format!("feed:{}", self.0)
    }
}

/// The longest feed id taken; the ids callfeed makes are far shorter.
const MAX_ID: usize = 64;

/// Whether `id` is written as feed ids are: lowercase letters, digits and `-`, at most
/// [`MAX_ID`] of them. The one rule, for a session's `feed:ID` and wherever an id goes into
/// a URL.
pub fn is_feed_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub(super) fn parse(spec: &str, id: &str) -> Result<InputSpec, InputError> {
    if !is_feed_id(id) {
        return Err(invalid(
            spec,
            "feed:ID with the id `POST /v1/feeds` or `callfeed feed create` gave \
             (lowercase letters, digits and -)",
        ));
    }
    Ok(InputSpec::Feed(id.to_owned()))
}
