//! A pushed input: what a publisher connected to callfeed sends (see
//! [`Inlet`](crate::media::inlet::Inlet)). Built in code for a feed, never parsed from
//! a request.

use super::spec::{Input, InputItem};
use crate::media::inlet::Inlet;

pub(super) struct Pushed<'a>(pub(super) &'a Inlet);

impl Input for Pushed<'_> {
    fn paces_itself(&self) -> bool {
        true
    }
    fn item(&self) -> Option<InputItem> {
        Some(InputItem::Pushed(self.0.clone()))
    }
    fn describe(&self) -> String {
        "a publisher's push".into()
    }
}
