//! Every test vector of `shared/reference/tencent-cloud-apis.md`, asserted byte for byte.

use callfeed::cloud::room::RoomRef;
use callfeed::cloud::usersig::{self, Expectation};
use callfeed::cloud::{css, tc3, webhook};

const SDKAPPID: u64 = 1_400_000_000;
const KEY: &[u8] = b"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const NOW: u64 = 1_700_000_000;

const V1_PY: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__";
const V1_NODE: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYUZBaBxE1NTY3gosWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__";
const V2_PY: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-Myi0uKEkvyi2BKilOyEwsKMlOACgxNDKAAKpdaUZBZlAqUsTAzgQuWZOaChAzN0RQXZ6aDLKn0cUzVLjcPD00NLS1MCrPM0A*JMLcoNTLMD3HP1M60jCowLDUOKMiLNDOwVaoFAD4PNPI_";
const V3_PY: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPWlxalFSaVpIFsiw72y4FZkpoOEArNCjAwMKwKyI7L1E30NU7UrDcoSs6OSDLyNMgOK3EpTtbUNik0rzZLcfG2VagHdkjl6";
const PMK_NUMERIC: &str = "eJxVjc0KgkAYRd-l2xb*kVQDLb5CVJCwEoJ2jo7TpKn410j07qFZ0N1c7jmL*4TAOykdq4CAoWgwH7eIWd6IRIxYirC4tfmk6jgNy1LEQPSFNuVjGnFnQPTlP2WyFNXATdM0frStWUXbBAggosPs7EqNUqfZvg84Iu6iwyW1VBzir8b63gsOBPo1dtSUD4e7vMAttcPUCy1N1rNOjb3I9Rmn5ySiR8-dwOsNn*tDuQ__";
const PMK_STRING: &str = "eJxVzk0LgkAQBuD-MteiVLKPhQ5bmglZSeWhm*Jqk*lu2qoR-fdIK*iFgZnnvcwD9qtdr2Q5ENB6CnSbG0OW3TDChmv0*Vlmn6oIE18IDIGoA*WTtrlhyoCoo39ltcD87bquaz*VBcsDGQEB6tIlsy6nQBNqcFnf9zFtckzMfrNsxy1QXjsGrdpxq*87GAMBKYW-Se0reofC43OjTP0ktQ7joWW6M0*x2dDtTKxFwCtnCs8XEF9Ing__";

fn want<'a>(identifier: &'a str, userbuf: Option<&'a [u8]>) -> Expectation<'a> {
    Expectation {
        sdkappid: SDKAPPID,
        identifier,
        now: NOW,
        userbuf,
    }
}

#[test]
fn usersig_hmac_vectors() {
    assert_eq!(
        usersig::hmac_sig(KEY, "xiaojun", SDKAPPID, NOW, 15_552_000, None),
        "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="
    );
    assert_eq!(
        usersig::hmac_sig(KEY, "administrator", SDKAPPID, NOW, 86_400, None),
        "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
    );
    assert_eq!(
        usersig::hmac_sig(KEY, "xiaojun", SDKAPPID, NOW, 15_552_000, Some("YWJj")),
        "QjT201xPkXk/aM1e+y0vakZb0K2iPrFue++0s5y6bFM="
    );
}

#[test]
fn usersig_generation_matches_the_python_sdk_byte_for_byte() {
    assert_eq!(
        usersig::generate(SDKAPPID, KEY, "xiaojun", 15_552_000, NOW, None),
        V1_PY
    );
    assert_eq!(
        usersig::generate(SDKAPPID, KEY, "administrator", 86_400, NOW, None),
        V2_PY
    );
    assert_eq!(
        usersig::generate(SDKAPPID, KEY, "xiaojun", 15_552_000, NOW, Some(b"abc")),
        V3_PY
    );
}

#[test]
fn usersig_vectors_verify_in_both_sdk_forms() {
    for (sig, who, expire) in [
        (V1_PY, "xiaojun", 15_552_000),
        (V1_NODE, "xiaojun", 15_552_000),
        (V2_PY, "administrator", 86_400),
    ] {
        let fields = usersig::verify(sig, KEY, want(who, None)).unwrap();
        assert_eq!(fields.identifier, who);
        assert_eq!(fields.sdkappid, SDKAPPID);
        assert_eq!(fields.time, NOW);
        assert_eq!(fields.expire, expire);
        assert_eq!(fields.version, "2.0");
    }
    let fields = usersig::verify(V3_PY, KEY, want("xiaojun", Some(b"abc"))).unwrap();
    assert_eq!(fields.userbuf.as_deref(), Some(&b"abc"[..]));
    // The Node form is not byte-identical, and must still verify: never compare strings.
    assert_ne!(V1_PY, V1_NODE);
}

#[test]
fn usersig_vectors_fail_with_the_cloud_codes() {
    let expired = Expectation {
        now: NOW + 15_552_001,
        ..want("xiaojun", None)
    };
    assert_eq!(
        usersig::verify(V1_NODE, KEY, expired)
            .unwrap_err()
            .im_code(),
        70001
    );
    let last_valid = Expectation {
        now: NOW + 15_552_000,
        ..want("xiaojun", None)
    };
    assert!(usersig::verify(V1_NODE, KEY, last_valid).is_ok());
    assert_eq!(
        usersig::verify(&V1_PY[..40], KEY, want("xiaojun", None))
            .unwrap_err()
            .im_code(),
        70003
    );
    assert_eq!(
        usersig::verify(V1_PY, b"wrong", want("xiaojun", None))
            .unwrap_err()
            .im_code(),
        70009
    );
    assert_eq!(
        usersig::verify(V2_PY, KEY, want("xiaojun", None))
            .unwrap_err()
            .im_code(),
        70013
    );
    let other_app = Expectation {
        sdkappid: 1_400_000_001,
        ..want("xiaojun", None)
    };
    assert_eq!(
        usersig::verify(V1_PY, KEY, other_app)
            .unwrap_err()
            .im_code(),
        70014
    );
    assert_eq!(
        usersig::verify(V3_PY, KEY, want("xiaojun", Some(b"abd")))
            .unwrap_err()
            .im_code(),
        70009
    );
}

#[test]
fn private_map_key_numeric_room() {
    let room = RoomRef::numeric(10_000).unwrap();
    let userbuf = usersig::private_map_userbuf("xiaojun", 1_400_000_000, &room, 1_715_552_000, 255);
    assert_eq!(
        hex::encode(&userbuf),
        "0000077869616f6a756e53724e000000271066413f00000000ff00000000"
    );
    let fields = usersig::verify(PMK_NUMERIC, KEY, want("xiaojun", Some(&userbuf))).unwrap();
    assert_eq!(fields.userbuf.as_deref(), Some(userbuf.as_slice()));
    let ours = usersig::generate_private_map_key(
        1_400_000_000,
        KEY,
        "xiaojun",
        &room,
        255,
        15_552_000,
        1_700_000_000,
    );
    let (ours, ours_mac) = usersig::decode(&ours).unwrap();
    let (theirs, theirs_mac) = usersig::decode(PMK_NUMERIC).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours_mac, "y9Avb5xwHgIgoABbGakLaE0xs+v/dLcIPegbWfcbRLI=");
    assert_eq!(ours_mac, theirs_mac);
}

#[test]
fn private_map_key_string_room() {
    let room = RoomRef::string("1000000040").unwrap();
    let userbuf = usersig::private_map_userbuf("xiaojun", 1_400_000_000, &room, 1_715_552_000, 255);
    assert_eq!(
        hex::encode(&userbuf),
        "0100077869616f6a756e53724e000000000066413f00000000ff00000000000a31303030303030303430"
    );
    usersig::verify(PMK_STRING, KEY, want("xiaojun", Some(&userbuf))).unwrap();
    let ours = usersig::generate_private_map_key(
        1_400_000_000,
        KEY,
        "xiaojun",
        &room,
        255,
        15_552_000,
        1_700_000_000,
    );
    let (_, mac) = usersig::decode(&ours).unwrap();
    assert_eq!(mac, "uupaOmIqiVUsVoCDvmakmGU86GEQBV0Ie6Q+9GFbowM=");
    // A key for the numeric room 1000000040 is not a key for the string room.
    let numeric = RoomRef::numeric(1_000_000_040).unwrap();
    let wrong =
        usersig::private_map_userbuf("xiaojun", 1_400_000_000, &numeric, 1_715_552_000, 255);
    assert!(usersig::verify(PMK_STRING, KEY, want("xiaojun", Some(&wrong))).is_err());
}

const CVM_BODY: &str =
    r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

#[test]
fn tc3_official_example_signing_x_tc_action() {
    let sig = tc3::sign(
        &"*".repeat(32),
        &tc3::SignInput {
            method: "POST",
            canonical_uri: "/",
            canonical_query: "",
            signed_headers: &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Host", "cvm.tencentcloudapi.com"),
                ("X-TC-Action", "DescribeInstances"),
            ],
            payload: Some(CVM_BODY.as_bytes()),
            timestamp: 1_551_113_065,
            service: "cvm",
        },
    );
    assert_eq!(
        sig.hashed_payload,
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    );
    assert_eq!(
        sig.canonical_request,
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\nx-tc-action:describeinstances\n\ncontent-type;host;x-tc-action\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    );
    assert_eq!(
        sig.hashed_canonical_request,
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    );
    assert_eq!(sig.date, "2019-02-25");
    assert_eq!(
        hex::encode(sig.secret_date),
        "da98fb70dcf6b112dc21038d1eeeb3a95c74b4dcb12c1131f864f6066bd02be0"
    );
    assert_eq!(
        hex::encode(sig.secret_service),
        "8d70cbefb03939f929db64d32dc2ba89b1095620119fe3e050e2b18c5bd2752f"
    );
    assert_eq!(
        hex::encode(sig.secret_signing),
        "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
    );
    assert_eq!(
        sig.signature,
        "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    );
}

#[test]
fn tc3_older_example_signing_content_type_and_host() {
    let sig = tc3::sign(
        "Gu5t9xGARNpq86cd98joQYCN3*******",
        &tc3::SignInput {
            method: "POST",
            canonical_uri: "/",
            canonical_query: "",
            signed_headers: &[
                ("content-type", "application/json; charset=utf-8"),
                ("host", "cvm.tencentcloudapi.com"),
            ],
            payload: Some(CVM_BODY.as_bytes()),
            timestamp: 1_551_113_065,
            service: "cvm",
        },
    );
    assert_eq!(
        sig.hashed_canonical_request,
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    );
    assert_eq!(
        hex::encode(sig.secret_date),
        "f1cb4d518a0eda9d5cbbfdb7850983f1e603eeae484edea76e4dd8d8deb5556e"
    );
    assert_eq!(
        hex::encode(sig.secret_service),
        "e7c609ce81bea53546bed2cc904778bef9ca14082e48e67883443ed64e227cd7"
    );
    assert_eq!(
        hex::encode(sig.secret_signing),
        "8aa8ab5755582f576e94bcfe383b8e29325b0ca90c3590d569221c6a63a091ed"
    );
    assert_eq!(
        sig.signature,
        "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    );
    assert_eq!(
        sig.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"),
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    );
}

const SDK_INGEST_BODY: &str = r#"{"SdkAppId": 1400000000, "RoomId": "room-1", "RoomIdType": 0, "UserId": "ingest_bot", "UserSig": "eJx-demo-usersig", "StreamUrl": "https://example.com/live/stream.flv", "RepeatNum": 1}"#;
const SDK_SECRET_ID: &str = "AKIDEXAMPLEsecretid0000000000000000";
const SDK_SECRET_KEY: &str = "EXAMPLEsecretkey00000000000000";

fn sdk_ingest_signature(host: &str) -> tc3::Signature {
    tc3::sign(
        SDK_SECRET_KEY,
        &tc3::SignInput {
            method: "POST",
            canonical_uri: "/",
            canonical_query: "",
            signed_headers: &[("Content-Type", "application/json"), ("Host", host)],
            payload: Some(SDK_INGEST_BODY.as_bytes()),
            timestamp: 1_700_000_000,
            service: "trtc",
        },
    )
}

#[test]
fn tc3_python_sdk_start_stream_ingest_vector() {
    let sig = sdk_ingest_signature("trtc.tencentcloudapi.com");
    assert_eq!(
        sig.hashed_payload,
        "396bbc676b1f961c3c2e528d12d04279846569a8a46de1e0932fe66a23a3c691"
    );
    assert_eq!(
        sig.hashed_canonical_request,
        "ad1c7dd62561f76e261ebc3c5c7643c5a2a0322f7f5f40aafcd5efeb8325c265"
    );
    assert_eq!(
        sig.string_to_sign,
        "TC3-HMAC-SHA256\n1700000000\n2023-11-14/trtc/tc3_request\nad1c7dd62561f76e261ebc3c5c7643c5a2a0322f7f5f40aafcd5efeb8325c265"
    );
    assert_eq!(
        hex::encode(sig.secret_date),
        "b8df5f66ea398e405f28942ca94a84e8a840ef129cb0f70dd8b2a4eef23fe3b9"
    );
    assert_eq!(
        hex::encode(sig.secret_service),
        "334deaf41b90da753101c50ef28e212341598ce8c2f08a682f6f28b88e05fb10"
    );
    assert_eq!(
        hex::encode(sig.secret_signing),
        "e6c31ac58c6ae78f8ca547fb89774dbbd2ddee4dbdd262b1b3d1bc3c82c3b670"
    );
    assert_eq!(
        sig.authorization(SDK_SECRET_ID),
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLEsecretid0000000000000000/2023-11-14/trtc/tc3_request, SignedHeaders=content-type;host, Signature=c3805f4e7b4ab101982769d50d180c5473d47825298023c4e155521ebb256e83"
    );
    let intl = sdk_ingest_signature("trtc.intl.tencentcloudapi.com");
    assert_eq!(
        intl.hashed_canonical_request,
        "868392581067c0a34c4a8326684a6f343d16d9964d33b876a89a051623a660f6"
    );
    assert_eq!(intl.credential_scope, "2023-11-14/trtc/tc3_request");
    assert_eq!(
        intl.signature,
        "68a23d10a4163dda67187f6b498717018f2997e0ac0fb8759176368f89c585f3"
    );
}

fn sdk_request_headers(name: &str) -> Option<String> {
    let auth = "TC3-HMAC-SHA256 Credential=AKIDEXAMPLEsecretid0000000000000000/2023-11-14/trtc/tc3_request, SignedHeaders=content-type;host, Signature=c3805f4e7b4ab101982769d50d180c5473d47825298023c4e155521ebb256e83";
    match name.to_ascii_lowercase().as_str() {
        "authorization" => Some(auth.into()),
        "content-type" => Some("application/json".into()),
        "host" => Some("trtc.tencentcloudapi.com".into()),
        "x-tc-timestamp" => Some("1700000000".into()),
        "x-tc-action" => Some("StartStreamIngest".into()),
        _ => None,
    }
}

#[test]
fn tc3_verify_accepts_the_sdk_request_and_refuses_tampering() {
    let keys = |id: &str| (id == SDK_SECRET_ID).then(|| SDK_SECRET_KEY.to_owned());
    let req = tc3::ReceivedRequest {
        method: "POST",
        canonical_query: "",
        header: &sdk_request_headers,
        body: SDK_INGEST_BODY.as_bytes(),
    };
    let auth = tc3::verify(&req, "trtc", &keys, 1_700_000_100).unwrap();
    assert_eq!(auth.secret_id, SDK_SECRET_ID);
    assert_eq!(auth.signed_headers, ["content-type", "host"]);

    let skewed = tc3::verify(&req, "trtc", &keys, 1_700_000_301).unwrap_err();
    assert_eq!(skewed.code, "AuthFailure.SignatureExpire");
    let unknown = tc3::verify(&req, "trtc", &|_: &str| None, 1_700_000_000).unwrap_err();
    assert_eq!(unknown.code, "AuthFailure.SecretIdNotFound");
    let wrong_key = |_: &str| Some("another key".to_owned());
    let bad = tc3::verify(&req, "trtc", &wrong_key, 1_700_000_000).unwrap_err();
    assert_eq!(bad.code, "AuthFailure.SignatureFailure");

    // One changed byte of the body (a compact re-serialisation, say) breaks the signature.
    let reserialised = SDK_INGEST_BODY.replace(", ", ",");
    let tampered = tc3::ReceivedRequest {
        body: reserialised.as_bytes(),
        ..req
    };
    assert_eq!(
        tc3::verify(&tampered, "trtc", &keys, 1_700_000_000)
            .unwrap_err()
            .code,
        "AuthFailure.SignatureFailure"
    );
    let no_auth = |n: &str| {
        if n.eq_ignore_ascii_case("authorization") {
            None
        } else {
            sdk_request_headers(n)
        }
    };
    let anonymous = tc3::ReceivedRequest {
        header: &no_auth,
        ..req
    };
    assert_eq!(
        tc3::verify(&anonymous, "trtc", &keys, 1_700_000_000)
            .unwrap_err()
            .code,
        "AuthFailure.InvalidAuthorization"
    );
}

#[test]
fn tc3_verify_honours_the_signed_headers_list() {
    // The official example signs x-tc-action too; the verifier must use the client's list.
    let headers = |name: &str| -> Option<String> {
        match name.to_ascii_lowercase().as_str() {
            "authorization" => Some("TC3-HMAC-SHA256 Credential=AKID********************************/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature=10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f".into()),
            "content-type" => Some("application/json; charset=utf-8".into()),
            "host" => Some("cvm.tencentcloudapi.com".into()),
            "x-tc-action" => Some("DescribeInstances".into()),
            "x-tc-timestamp" => Some("1551113065".into()),
            _ => None,
        }
    };
    let keys = |_: &str| Some("*".repeat(32));
    let req = tc3::ReceivedRequest {
        method: "POST",
        canonical_query: "",
        header: &headers,
        body: CVM_BODY.as_bytes(),
    };
    tc3::verify(&req, "cvm", &keys, 1_551_113_065).unwrap();
    let other_action = |name: &str| {
        if name.eq_ignore_ascii_case("x-tc-action") {
            Some("RunInstances".to_owned())
        } else {
            headers(name)
        }
    };
    let changed = tc3::ReceivedRequest {
        header: &other_action,
        ..req
    };
    assert_eq!(
        tc3::verify(&changed, "cvm", &keys, 1_551_113_065)
            .unwrap_err()
            .code,
        "AuthFailure.SignatureFailure"
    );
}

#[test]
fn tc3_date_is_utc() {
    // 2023-11-14 22:13:20 UTC is already 2023-11-15 in Beijing.
    assert_eq!(tc3::utc_date(1_700_000_000), "2023-11-14");
    assert_eq!(tc3::utc_date(1_551_113_065), "2019-02-25");
}

#[test]
fn webhook_sign_vectors() {
    let official = "{\n\t\"EventGroupId\":\t2,\n\t\"EventType\":\t204,\n\t\"CallbackTs\":\t1664209748188,\n\t\"EventInfo\":\t{\n\t\t\"RoomId\":\t8489,\n\t\t\"EventTs\":\t1664209748,\n\t\t\"EventMsTs\":\t1664209748180,\n\t\t\"UserId\":\t\"user_85034614\",\n\t\t\"Reason\":\t0\n\t}\n}";
    assert_eq!(
        webhook::trtc_sign("123654", official.as_bytes()),
        "kkoFeO3Oh2ZHnjtg8tEAQhtXK16/KI05W3BQff8IvGA="
    );
    assert!(webhook::verify_trtc_sign(
        "123654",
        official.as_bytes(),
        "kkoFeO3Oh2ZHnjtg8tEAQhtXK16/KI05W3BQff8IvGA="
    ));
    let local = r#"{"EventGroupId":7,"EventType":701,"CallbackMsTs":1701937900012,"EventInfo":{"EventMsTs":1701937900013,"TaskId":"xx","Status":0}}"#;
    assert_eq!(
        webhook::trtc_sign("123654", local.as_bytes()),
        "Y2v6Is94qZztTzuALzMnYS2+mYbuhafkVBWxIBtyOeA="
    );
    assert!(!webhook::verify_trtc_sign(
        "123655",
        local.as_bytes(),
        "Y2v6Is94qZztTzuALzMnYS2+mYbuhafkVBWxIBtyOeA="
    ));
    // The parsed events of both vectors.
    match webhook::TrtcWebhook::parse(official.as_bytes()).unwrap() {
        webhook::TrtcWebhook::Room {
            event_group,
            event_type,
            room_id,
            user_id,
            ..
        } => {
            assert_eq!((event_group, event_type), (2, 204));
            assert_eq!(room_id, "8489");
            assert_eq!(user_id.as_deref(), Some("user_85034614"));
        }
        other => panic!("parsed as {other:?}"),
    }
    assert_eq!(
        webhook::TrtcWebhook::parse(local.as_bytes()).unwrap(),
        webhook::TrtcWebhook::Ingest {
            task_id: "xx".into(),
            event: webhook::IngestEvent::Started,
            event_ms: 1_701_937_900_013,
            callback_ms: 1_701_937_900_012,
        }
    );
}

#[test]
fn css_vectors() {
    let rows = [
        (
            "ngoeiq03",
            "test01",
            "5C01D608",
            "ce797dc6238156d548ef945e6ad1ea20",
        ),
        (
            "ngoeiq03",
            "test01",
            "5c01d608",
            "6cfcc16fa1eb1200c78b8296468b9180",
        ),
        (
            "somestring",
            "test",
            "5c2acacc",
            "b77e812107e1d8b8f247885a46e1bd34",
        ),
        (
            "somestring",
            "test_900",
            "5c2acacc",
            "4beae959b16c77da6a65c7edda1dfefe",
        ),
        (
            "pushkey123",
            "call_42_audio",
            "6553FF10",
            "a9b6d509ea4a50d6a10aaf3bf0ea0cca",
        ),
    ];
    for (key, stream, tx_time, secret) in rows {
        assert_eq!(
            css::tx_secret(key, stream, tx_time),
            secret,
            "{key} {stream} {tx_time}"
        );
    }
    assert_eq!(css::tx_time(1_543_624_200), "5C01D608");
    assert_eq!(css::tx_time(1_700_003_600), "6553FF10");
}
