//! What a session asks of its room monitor: whose stream the cloud publishes back (the
//! robot's, or the room's mix with the callee's voice) and whether it is recorded. A leaf
//! the request, the run and the service share.

use crate::cloud::InvalidArgument;

/// What the cloud publishes of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorSource {
    /// The robot's stream as it reaches the room: what the callee receives of it.
    Robot,
    /// The room's mix: the callee's voice too.
    Mix,
}

impl MonitorSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Robot => "robot",
            Self::Mix => "mix",
        }
    }
}

/// What a recording keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Sound and picture (MP4); sound alone (M4A) for an audio call.
    Media,
    /// Sound only (M4A).
    Audio,
}

/// A session's room monitor, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MonitorSpec {
    pub source: MonitorSource,
    pub record: Option<RecordKind>,
}

/// `monitor` (`true`, `false`, `"robot"`, `"mix"`) and `record` (`true`, `false`,
/// `"audio"`) as a request gives them; a recording needs a monitor, and asks for one.
pub fn parse(
    monitor: Option<&serde_json::Value>,
    record: Option<&serde_json::Value>,
) -> Result<Option<MonitorSpec>, InvalidArgument> {
    use serde_json::Value;
    let source = match monitor {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(MonitorSource::Robot),
        Some(Value::String(s)) if s == "robot" => Some(MonitorSource::Robot),
        Some(Value::String(s)) if s == "mix" => Some(MonitorSource::Mix),
        Some(other) => {
            return Err(InvalidArgument::new(
                "monitor",
                shown(other),
                "true (the robot's stream as the room carries it), \"mix\" (the room's mix, the callee's voice too) or false",
            ));
        }
    };
    let record = match record {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(RecordKind::Media),
        Some(Value::String(s)) if s == "audio" => Some(RecordKind::Audio),
        Some(other) => {
            return Err(InvalidArgument::new(
                "record",
                shown(other),
                "true (sound and picture), \"audio\" or false",
            ));
        }
    };
    Ok(match (source, record) {
        (None, None) => None,
        (source, record) => Some(MonitorSpec {
            source: source.unwrap_or(MonitorSource::Robot),
            record,
        }),
    })
}

/// A value as a refusal names it: short, whatever was sent.
fn shown(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn monitor_and_record_take_their_documented_forms() {
        let p = |m: serde_json::Value, r: serde_json::Value| parse(Some(&m), Some(&r));
        assert_eq!(p(json!(false), json!(null)).unwrap(), None);
        assert_eq!(
            p(json!(true), json!(false)).unwrap().unwrap().source,
            MonitorSource::Robot
        );
        let mix = p(json!("mix"), json!("audio")).unwrap().unwrap();
        assert_eq!(
            (mix.source, mix.record),
            (MonitorSource::Mix, Some(RecordKind::Audio))
        );
        // A recording asks for a monitor of the robot's stream.
        let rec = parse(None, Some(&json!(true))).unwrap().unwrap();
        assert_eq!(
            (rec.source, rec.record),
            (MonitorSource::Robot, Some(RecordKind::Media))
        );
        assert_eq!(p(json!("room"), json!(null)).unwrap_err().field, "monitor");
        assert_eq!(p(json!(1), json!("video")).unwrap_err().field, "monitor");
        assert_eq!(p(json!(true), json!("video")).unwrap_err().field, "record");
    }
}
