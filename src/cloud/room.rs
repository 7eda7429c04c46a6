//! TRTC rooms and their two numberings.
//!
//! The call engine says `RoomIdType` 1 = numeric, 2 = string; StartStreamIngest says
//! 0 = string, 1 = numeric. This module is the only place those integers are spelled, so a
//! robot and its callee can never end up in different rooms through a mix-up.

use std::fmt;

use super::ids::InvalidArgument;

/// Highest numeric TRTC room id (u32::MAX - 1).
pub const MAX_NUMERIC_ROOM: u32 = 4_294_967_294;
/// Longest string room id TRTC accepts.
pub const MAX_STRING_ROOM_BYTES: usize = 64;
/// Punctuation TRTC allows in string room ids besides letters and digits.
const STRING_ROOM_PUNCTUATION: &str = "!#$%&()+-:;<=.>?@[]^_{}|~,";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A 32-bit integer room, 1..=4294967294.
    Numeric,
    /// A string room of up to 64 bytes.
    String,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Numeric => "numeric",
            RoomKind::String => "string",
        }
    }
}

impl fmt::Display for RoomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RoomKind {
    type Err = InvalidArgument;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "numeric" => Ok(RoomKind::Numeric),
            "string" => Ok(RoomKind::String),
            other => Err(InvalidArgument::new(
                "room type",
                other,
                "`string` or `numeric`",
            )),
        }
    }
}

/// A TRTC room: its id as it travels on the wire (always a JSON string) and its kind.
///
/// The string room "123" and the numeric room 123 are different rooms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RoomRef {
    id: String,
    kind: RoomKind,
}

impl RoomRef {
    pub fn new(id: &str, kind: RoomKind) -> Result<Self, InvalidArgument> {
        match kind {
            RoomKind::Numeric => {
                let allowed =
                    format!("a numeric room id is an integer from 1 to {MAX_NUMERIC_ROOM}");
                let n: u64 = id
                    .parse()
                    .map_err(|_| InvalidArgument::new("RoomId", id, allowed.clone()))?;
                if n == 0 || n > u64::from(MAX_NUMERIC_ROOM) {
                    return Err(InvalidArgument::new("RoomId", id, allowed));
                }
                // Canonical form: "007" and "7" are the same numeric room.
                Ok(Self {
                    id: n.to_string(),
                    kind,
                })
            }
            RoomKind::String => {
                let allowed = format!(
                    "a string room id is 1 to {MAX_STRING_ROOM_BYTES} bytes of letters, digits and {STRING_ROOM_PUNCTUATION}"
                );
                if id.is_empty()
                    || id.len() > MAX_STRING_ROOM_BYTES
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || STRING_ROOM_PUNCTUATION.contains(c))
                {
                    return Err(InvalidArgument::new("RoomId", id, allowed));
                }
                Ok(Self {
                    id: id.to_owned(),
                    kind,
                })
            }
        }
    }

    pub fn numeric(n: u32) -> Result<Self, InvalidArgument> {
        Self::new(&n.to_string(), RoomKind::Numeric)
    }

    pub fn string(id: &str) -> Result<Self, InvalidArgument> {
        Self::new(id, RoomKind::String)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kind(&self) -> RoomKind {
        self.kind
    }

    /// The numeric id, for PrivateMapKey; `None` for string rooms.
    pub fn numeric_id(&self) -> Option<u32> {
        match self.kind {
            RoomKind::Numeric => self.id.parse().ok(),
            RoomKind::String => None,
        }
    }

    /// `CallInfo.RoomIdType` of the call engine: 1 = numeric, 2 = string.
    pub fn call_room_id_type(&self) -> u8 {
        match self.kind {
            RoomKind::Numeric => 1,
            RoomKind::String => 2,
        }
    }

    /// `RoomIdType` of StartStreamIngest: 0 = string, 1 = numeric.
    pub fn ingest_room_id_type(&self) -> u8 {
        match self.kind {
            RoomKind::String => 0,
            RoomKind::Numeric => 1,
        }
    }

    /// `RoomIdType` of StartPublishCdnStream (and its `MixUserInfo`): 0 = numeric,
    /// 1 = string — the reverse of StartStreamIngest's.
    pub fn publish_cdn_room_id_type(&self) -> u8 {
        match self.kind {
            RoomKind::Numeric => 0,
            RoomKind::String => 1,
        }
    }

    /// A room as StartPublishCdnStream names it (0 = numeric, 1 = string).
    pub fn from_publish_cdn(id: &str, room_id_type: i64) -> Result<Self, InvalidArgument> {
        match room_id_type {
            0 => Self::new(id, RoomKind::Numeric),
            1 => Self::new(id, RoomKind::String),
            other => Err(InvalidArgument::new(
                "RoomIdType",
                other,
                "0 (numeric room) or 1 (string room) — the reverse of StartStreamIngest",
            )),
        }
    }

    /// A room as the call engine reports it. `Ok(None)` for the "no room" form (type 0 or an
    /// empty id) that calls without a room carry.
    pub fn from_call(id: &str, room_id_type: i64) -> Result<Option<Self>, InvalidArgument> {
        match room_id_type {
            0 => Ok(None),
            _ if id.is_empty() => Ok(None),
            1 => Self::new(id, RoomKind::Numeric).map(Some),
            2 => Self::new(id, RoomKind::String).map(Some),
            other => Err(InvalidArgument::new(
                "CallInfo.RoomIdType",
                other,
                "1 (numeric room) or 2 (string room)",
            )),
        }
    }

    /// A room as StartStreamIngest names it.
    pub fn from_ingest(id: &str, room_id_type: i64) -> Result<Self, InvalidArgument> {
        match room_id_type {
            0 => Self::new(id, RoomKind::String),
            1 => Self::new(id, RoomKind::Numeric),
            other => Err(InvalidArgument::new(
                "RoomIdType",
                other,
                "0 (string room) or 1 (numeric room)",
            )),
        }
    }
}

impl fmt::Display for RoomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} room {}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_numberings_map_onto_each_other() {
        let s = RoomRef::string("roomid-test").unwrap();
        let n = RoomRef::numeric(12345).unwrap();
        assert_eq!((s.call_room_id_type(), s.ingest_room_id_type()), (2, 0));
        assert_eq!((n.call_room_id_type(), n.ingest_room_id_type()), (1, 1));
        for room in [&s, &n] {
            let via_call = RoomRef::from_call(room.id(), room.call_room_id_type().into())
                .unwrap()
                .unwrap();
            let via_ingest =
                RoomRef::from_ingest(room.id(), room.ingest_room_id_type().into()).unwrap();
            assert_eq!(&via_call, room);
            assert_eq!(&via_ingest, room);
        }
    }

    #[test]
    fn same_digits_different_rooms() {
        let s = RoomRef::string("123").unwrap();
        let n = RoomRef::numeric(123).unwrap();
        assert_ne!(s, n);
        assert_eq!(s.id(), n.id());
    }

    #[test]
    fn numeric_range() {
        assert!(RoomRef::new("1", RoomKind::Numeric).is_ok());
        assert!(RoomRef::new("4294967294", RoomKind::Numeric).is_ok());
        for bad in ["0", "4294967295", "-1", "12a", "", "99999999999999999999"] {
            let err = RoomRef::new(bad, RoomKind::Numeric).unwrap_err();
            assert_eq!(err.field, "RoomId");
            assert!(err.to_string().contains("1 to 4294967294"), "{err}");
        }
        assert_eq!(RoomRef::new("007", RoomKind::Numeric).unwrap().id(), "7");
    }

    #[test]
    fn string_rooms() {
        assert!(RoomRef::string("roomid-test_1").is_ok());
        assert!(RoomRef::string(&"a".repeat(64)).is_ok());
        assert!(RoomRef::string(&"a".repeat(65)).is_err());
        assert!(RoomRef::string("has space").is_err());
        assert!(RoomRef::string("").is_err());
    }

    #[test]
    fn unknown_types_are_refused() {
        assert!(RoomRef::from_call("5", 3).is_err());
        assert!(RoomRef::from_ingest("5", 2).is_err());
        assert_eq!(RoomRef::from_call("", 0).unwrap(), None);
        let err = "int".parse::<RoomKind>().unwrap_err();
        assert!(err.to_string().contains("`string` or `numeric`"), "{err}");
    }
}
