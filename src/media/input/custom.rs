//! `custom:NAME[:ARG]`: the user's own `source.NAME_video` / `source.NAME_audio` topology.
//! A custom fragment may read a file, so it is paced like one.

use super::spec::{Input, InputError, InputSpec, invalid};
use crate::media::topology::{Fragment, Topologies, TopologyError};

pub(super) struct Custom<'a> {
    pub(super) name: &'a str,
    pub(super) arg: &'a str,
}

impl Input for Custom<'_> {
    /// The argument stays data: see [`Fragment::bind`].
    fn source_fragments(
        &self,
        topologies: &Topologies,
        _canvas: Option<(u32, u32)>,
    ) -> Result<(Option<Fragment>, Option<Fragment>), TopologyError> {
        let (name, arg) = (self.name, self.arg);
        let (vk, ak) = (
            format!("source.{name}_video"),
            format!("source.{name}_audio"),
        );
        if !topologies.has(&vk) && !topologies.has(&ak) {
            return Err(TopologyError::UnknownCustom(name.to_owned()));
        }
        let v = topologies
            .has(&vk)
            .then(|| topologies.render_fragment(&vk, &[("arg", arg)]))
            .transpose()?;
        let a = topologies
            .has(&ak)
            .then(|| topologies.render_fragment(&ak, &[("arg", arg)]))
            .transpose()?;
        Ok((v, a))
    }
    fn describe(&self) -> String {
        if self.arg.is_empty() {
            format!("custom:{}", self.name)
        } else {
            format!("custom:{}:{}", self.name, self.arg)
        }
    }
}

pub(super) fn parse(spec: &str, rest: &str) -> Result<InputSpec, InputError> {
    let (name, arg) = rest.split_once(':').unwrap_or((rest, ""));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(invalid(
            spec,
            "custom:NAME[:ARG] with NAME of letters, digits and _",
        ));
    }
    Ok(InputSpec::Custom {
        name: name.to_owned(),
        arg: arg.to_owned(),
    })
}
