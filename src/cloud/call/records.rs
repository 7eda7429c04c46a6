//! The records service (`call_record_http_srv`): finished calls, one by id or a filtered page.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CallCommand, check_call_id, lenient_i64, lenient_string};
use crate::cloud::ids::InvalidArgument;
use crate::cloud::room::RoomRef;

/// A finished call, from the records service or `Call.CallbackAfterEndCall`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CallRecord {
    #[serde(rename = "CallId")]
    pub call_id: String,
    #[serde(
        rename = "Caller_Account",
        default,
        deserialize_with = "lenient_string"
    )]
    pub caller: String,
    #[serde(rename = "MediaType", alias = "CallMediaType", default)]
    pub media_type: String,
    #[serde(rename = "CallType", default)]
    pub call_type: String,
    #[serde(rename = "StartTime", default, deserialize_with = "lenient_i64")]
    pub start_time: i64,
    #[serde(rename = "EndTime", default, deserialize_with = "lenient_i64")]
    pub end_time: i64,
    #[serde(rename = "AcceptTime", default, deserialize_with = "lenient_i64")]
    pub accept_time: i64,
    /// `Cancel`, `Reject`, `NotAnswer`, `NormalEnd`, `CallBusy`, `Interrupt`, `Offline`.
    #[serde(rename = "CallResult", default, deserialize_with = "lenient_string")]
    pub call_result: String,
    #[serde(rename = "CalleeList_Account", default)]
    pub members: Vec<Value>,
    #[serde(rename = "RoomId", default, deserialize_with = "lenient_string")]
    pub room_id: String,
    #[serde(rename = "RoomIdType", default, deserialize_with = "lenient_i64")]
    pub room_id_type: i64,
}

impl CallRecord {
    pub fn room(&self) -> Option<RoomRef> {
        RoomRef::from_call(&self.room_id, self.room_id_type)
            .ok()
            .flatten()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordByCallId {
    pub call_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CallRecordResponse {
    #[serde(rename = "CallRecord")]
    pub record: CallRecord,
}

impl CallCommand for GetRecordByCallId {
    const PATH: &'static str = "call_record_http_srv/get_record_by_callid";
    const IDEMPOTENT: bool = true;
    type Response = CallRecordResponse;
    fn body(&self) -> Result<Value, InvalidArgument> {
        check_call_id(&self.call_id)?;
        Ok(json!({ "CallId": self.call_id }))
    }
}

/// Records of the last 7 days, paged. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetRecordByFilter {
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub number_per_page: Option<u32>,
    pub page: Option<u32>,
    pub call_result: Option<String>,
    pub call_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RecordListResponse {
    #[serde(rename = "TotalNum", default, deserialize_with = "lenient_i64")]
    pub total: i64,
    #[serde(rename = "Page", default, deserialize_with = "lenient_i64")]
    pub page: i64,
    #[serde(rename = "CallRecordList", default)]
    pub records: Vec<CallRecord>,
}

impl CallCommand for GetRecordByFilter {
    const PATH: &'static str = "call_record_http_srv/get_record_by_filter";
    const IDEMPOTENT: bool = true;
    type Response = RecordListResponse;
    fn body(&self) -> Result<Value, InvalidArgument> {
        if let (Some(s), Some(e)) = (self.start_time, self.end_time)
            && s > e
        {
            return Err(InvalidArgument::new(
                "StartTime",
                s,
                format!("a Unix time not after EndTime {e}"),
            ));
        }
        if self.page == Some(0) {
            return Err(InvalidArgument::new("Page", 0, "1 or more"));
        }
        if self.number_per_page == Some(0) {
            return Err(InvalidArgument::new("NumberPerPage", 0, "1 or more"));
        }
        let mut body = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.to_owned(), v);
            }
        };
        put("StartTime", self.start_time.map(Value::from));
        put("EndTime", self.end_time.map(Value::from));
        put("NumberPerPage", self.number_per_page.map(Value::from));
        put("Page", self.page.map(Value::from));
        put("CallResult", self.call_result.clone().map(Value::from));
        put("CallType", self.call_type.clone().map(Value::from));
        Ok(Value::Object(body))
    }
}
