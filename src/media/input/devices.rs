//! Capture devices: a V4L2 camera, an ALSA or PulseAudio microphone, on the clock.

use std::path::Path;

use super::spec::{Input, InputError, InputSpec, Microphone, invalid};
use crate::media::topology::{Fragment, Topologies, TopologyError};

pub(super) struct Devices<'a> {
    pub(super) camera: &'a Option<String>,
    pub(super) microphone: &'a Option<Microphone>,
}

impl Input for Devices<'_> {
    fn check_available(&self) -> Result<(), InputError> {
        match self.camera {
            Some(dev) if !Path::new(dev).exists() => Err(InputError::UnknownDevice {
                device: dev.clone(),
            }),
            _ => Ok(()),
        }
    }
    fn paces_itself(&self) -> bool {
        true
    }
    /// Device names stay data: see [`Fragment::bind`].
    fn source_fragments(
        &self,
        topologies: &Topologies,
        _canvas: Option<(u32, u32)>,
    ) -> Result<(Option<Fragment>, Option<Fragment>), TopologyError> {
        let (camera, microphone) = (self.camera, self.microphone);
        let v = camera
            .as_ref()
            .map(|d| topologies.render_fragment("source.v4l2_video", &[("device", d)]))
            .transpose()?;
        let a = microphone
            .as_ref()
            .map(|m| match m {
                Microphone::Alsa(d) => {
                    topologies.render_fragment("source.alsa_audio", &[("device", d)])
                }
                Microphone::Pulse(d) => {
                    topologies.render_fragment("source.pulse_audio", &[("device", d)])
                }
            })
            .transpose()?;
        Ok((v, a))
    }
    fn describe(&self) -> String {
        let camera = self.camera.as_ref().map(|c| format!("v4l2:{c}"));
        let microphone = self.microphone.as_ref().map(|m| match m {
            Microphone::Alsa(d) => format!("alsa:{d}"),
            Microphone::Pulse(d) => format!("pulse:{d}"),
        });
        let parts: Vec<String> = camera.into_iter().chain(microphone).collect();
        parts.join("+")
    }
}

pub(super) fn parse(spec: &str) -> Result<InputSpec, InputError> {
    let (mut camera, mut microphone) = (None, None);
    for part in spec.split('+') {
        if let Some(dev) = part.strip_prefix("v4l2:") {
            camera = Some(dev.to_owned());
        } else if let Some(dev) = part.strip_prefix("alsa:") {
            microphone = Some(Microphone::Alsa(
                if dev.is_empty() { "default" } else { dev }.to_owned(),
            ));
        } else if let Some(dev) = part.strip_prefix("pulse:") {
            microphone = Some(Microphone::Pulse(
                if dev.is_empty() { "default" } else { dev }.to_owned(),
            ));
        } else {
            return Err(invalid(
                spec,
                format!("`{part}` is not v4l2:, alsa: or pulse:"),
            ));
        }
    }
    Ok(InputSpec::Devices { camera, microphone })
}
