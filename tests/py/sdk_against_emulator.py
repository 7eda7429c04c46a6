#!/usr/bin/env python3
"""Tencent's official Python SDKs pointed, unchanged, at the emulator.

  sdk_against_emulator.py HOST:PORT STREAM_URL [RTMP_URL]

Uses tencentcloud-sdk-python-trtc (HttpProfile endpoint + protocol "http") for StartStreamIngest,
DescribeStreamIngest, UpdateStreamIngest and StopStreamIngest, with RTMP_URL also StartPublishCdnStream,
UpdatePublishCdnStream and StopPublishCdnStream, and tls-sig-api-v2 for every UserSig. Prints one JSON object
with what each step returned.
"""
import json
import sys
import urllib.request

import TLSSigAPIv2
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.trtc.v20190722 import models, trtc_client

SDKAPPID = 1400000000
APP_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
SECRET_ID = "AKIDEXAMPLEsecretid0000000000000000"
SECRET_KEY = "EXAMPLEsecretkey00000000000000"

endpoint, stream_url = sys.argv[1], sys.argv[2]
rtmp_url = sys.argv[3] if len(sys.argv) > 3 else None
out = {}


def client(secret_key=SECRET_KEY):
    http = HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=10)
    return trtc_client.TrtcClient(credential.Credential(SECRET_ID, secret_key), "ap-singapore",
                                  ClientProfile(httpProfile=http))


def call(c, action, params):
    req = getattr(models, action + "Request")()
    req.from_json_string(json.dumps(params))
    try:
        return json.loads(getattr(c, action)(req).to_json_string())
    except TencentCloudSDKException as e:
        return {"error": e.get_code(), "message": e.get_message()}


sig = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, APP_KEY).gen_sig("py_robot")
start = call(client(), "StartStreamIngest", {
    "SdkAppId": SDKAPPID, "RoomId": "py-room", "RoomIdType": 0, "UserId": "py_robot",
    "UserSig": sig, "StreamUrl": stream_url, "RepeatNum": -1})
out["start"] = start
task = start.get("TaskId", "")
out["describe"] = call(client(), "DescribeStreamIngest", {"SdkAppId": SDKAPPID, "TaskId": task})
out["update"] = call(client(), "UpdateStreamIngest", {
    "SdkAppId": SDKAPPID, "TaskId": task, "StreamUrl": stream_url, "Volume": 50, "IsPause": False})
out["update_unknown"] = call(client(), "UpdateStreamIngest", {
    "SdkAppId": SDKAPPID, "TaskId": "not-a-task-of-this-app-0123456789", "Volume": 50})
if rtmp_url:
    def publish(room_id, room_id_type, agent):
        return call(client(), "StartPublishCdnStream", {
            "SdkAppId": SDKAPPID, "RoomId": room_id, "RoomIdType": room_id_type,
            "AgentParams": {"UserId": agent,
                            "UserSig": TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, APP_KEY).gen_sig(agent),
                            "MaxIdleTime": 30},
            "WithTranscoding": 0,
            "AudioParams": {"AudioEncode": {"SampleRate": 48000, "Channel": 1, "BitRate": 64, "Codec": 0}},
            "SingleSubscribeParams": {"UserMediaStream": {
                "UserInfo": {"UserId": "py_robot", "RoomId": room_id, "RoomIdType": room_id_type},
                "StreamType": 0}},
            "PublishCdnParams": [{"PublishCdnUrl": rtmp_url, "IsTencentCdn": 0}]})
    # A string room is RoomIdType 1 here (0 in StartStreamIngest).
    out["publish"] = publish("py-room", 1, "py_monitor")
    ptask = out["publish"].get("TaskId", "")
    out["publish_as_numeric"] = publish("py-room", 0, "py_monitor2")
    out["publish_update"] = call(client(), "UpdatePublishCdnStream", {
        "SdkAppId": SDKAPPID, "TaskId": ptask, "SequenceNumber": 1})
    out["publish_stop"] = call(client(), "StopPublishCdnStream", {"SdkAppId": SDKAPPID, "TaskId": ptask})
    out["publish_stop_again"] = call(client(), "StopPublishCdnStream",
                                     {"SdkAppId": SDKAPPID, "TaskId": ptask})
out["stop"] = call(client(), "StopStreamIngest", {"SdkAppId": SDKAPPID, "TaskId": task})
out["describe_after_stop"] = call(client(), "DescribeStreamIngest", {"SdkAppId": SDKAPPID, "TaskId": task})
out["wrong_secret"] = call(client("not-the-secret-key"), "DescribeStreamIngest",
                           {"SdkAppId": SDKAPPID, "TaskId": task})
out["bad_usersig"] = call(client(), "StartStreamIngest", {
    "SdkAppId": SDKAPPID, "RoomId": "py-room", "RoomIdType": 0, "UserId": "py_robot",
    "UserSig": TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, "another key").gen_sig("py_robot"),
    "StreamUrl": stream_url})


def im(identifier, usersig, body):
    url = (f"http://{endpoint}/v4/call_engine_http_srv/start_call_by_robot?sdkappid={SDKAPPID}"
           f"&identifier={identifier}&usersig={usersig}&random=12345&contenttype=json")
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return {"http": r.status, "content_type": r.headers.get("Content-Type"), **json.loads(r.read())}


call_body = {"Robot_Account": "py_robot", "CalleeList_Account": ["jack"], "Timeout": 30000,
             "CallInfo": {"MediaType": "Audio", "RoomId": "py-room", "RoomIdType": 2}}
admin_sig = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, APP_KEY).gen_sig("administrator", 86400)
out["im_ok"] = im("administrator", admin_sig, call_body)
# Tamper with one character inside the compressed document.
i = len(admin_sig) // 2
tampered = admin_sig[:i] + ("A" if admin_sig[i] != "A" else "B") + admin_sig[i + 1:]
out["im_tampered"] = im("administrator", tampered, call_body)
out["im_wrong_key"] = im("administrator",
                         TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, "another key").gen_sig("administrator"), call_body)
out["im_other_user_sig"] = im("administrator",
                              TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, APP_KEY).gen_sig("jack"), call_body)
print(json.dumps(out))
