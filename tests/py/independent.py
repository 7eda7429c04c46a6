#!/usr/bin/env python3
"""Independent checks of callfeed's signatures with Tencent's official Python packages.

  independent.py make-sigs            print UserSigs made by PyPI tls-sig-api-v2, one JSON per line
  independent.py check-sig KEY SDKAPPID USER SIG
                                      re-compute a UserSig of ours: inflate, parse, HMAC, and
                                      re-make it with the official SDK at the same time
  independent.py resign APPKEY SECRETKEY < dry-run.json
                                      re-sign a `callfeed api ... --dry-run` request: TC3 with the
                                      official SDK's sign_tc3, or the IM query UserSig as above
Exits non-zero with a message on any mismatch.
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.parse
import zlib

try:
    import TLSSigAPIv2
    from tencentcloud.common.sign import Sign
except ImportError as e:  # pragma: no cover
    sys.exit(f"missing Python package ({e}): run `make setup` "
             "(pip install tls-sig-api-v2 tencentcloud-sdk-python-trtc)")


def fail(msg):
    sys.exit(f"MISMATCH: {msg}")


def decode_usersig(sig):
    std = sig.replace("*", "+").replace("-", "/").replace("_", "=")
    return json.loads(zlib.decompress(base64.b64decode(std)))


def official_usersig(sdkappid, key, user, expire, at, userbuf=None):
    """The SDK reads the clock itself; freeze it at `at`."""
    real = time.time
    time.time = lambda: at
    try:
        api = TLSSigAPIv2.TLSSigAPIv2(sdkappid, key)
        if userbuf is None:
            return api.gen_sig(user, expire)
        return api.gen_sig_with_userbuf(user, expire, userbuf)
    finally:
        time.time = real


def check_sig(key, sdkappid, user, sig):
    doc = decode_usersig(sig)
    if doc["TLS.identifier"] != user:
        fail(f"identifier {doc['TLS.identifier']!r} != {user!r}")
    if int(doc["TLS.sdkappid"]) != sdkappid:
        fail(f"sdkappid {doc['TLS.sdkappid']} != {sdkappid}")
    lines = (f"TLS.identifier:{user}\nTLS.sdkappid:{sdkappid}\n"
             f"TLS.time:{doc['TLS.time']}\nTLS.expire:{doc['TLS.expire']}\n")
    if "TLS.userbuf" in doc:
        lines += f"TLS.userbuf:{doc['TLS.userbuf']}\n"
    mac = base64.b64encode(hmac.new(key.encode(), lines.encode(), hashlib.sha256).digest()).decode()
    if mac != doc["TLS.sig"]:
        fail(f"TLS.sig {doc['TLS.sig']} != recomputed {mac}")
    userbuf = base64.b64decode(doc["TLS.userbuf"]) if "TLS.userbuf" in doc else None
    official = official_usersig(sdkappid, key, user, int(doc["TLS.expire"]), int(doc["TLS.time"]), userbuf)
    if official != sig:
        fail(f"the official SDK makes {official} for the same inputs, callfeed made {sig}")
    return doc


def make_sigs():
    key = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
    cases = [
        (1400000000, "xiaojun", 15552000, 1700000000, None),
        (1400000000, "administrator", 86400, 1764000000, None),
        (1400000001, "robot_1-A", 300, 1764000123, None),
        (1400000000, "jack", 180 * 86400, 1764000000, b"abc"),
        (1400000000, "u" * 32, 1, 1600000000, bytes(range(40))),
    ]
    for sdkappid, user, expire, at, userbuf in cases:
        sig = official_usersig(sdkappid, key, user, expire, at, userbuf)
        print(json.dumps({"sdkappid": sdkappid, "key": key, "user": user, "expire": expire,
                          "time": at, "userbuf": userbuf.hex() if userbuf else None, "sig": sig}))


def resign(app_key, secret_key):
    req = json.load(sys.stdin)
    headers = {k.lower(): v for k, v in req["headers"].items()}
    body = req["body"].encode("utf-8")
    url = urllib.parse.urlsplit(req["url"])
    if "authorization" in headers:
        auth = headers["authorization"]
        algorithm, rest = auth.split(" ", 1)
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        secret_id, date, service, term = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        ts = int(headers["x-tc-timestamp"])
        if date != time.strftime("%Y-%m-%d", time.gmtime(ts)):
            fail(f"credential date {date} is not the UTC date of {ts}")
        if headers["host"] != url.netloc:
            fail(f"signed host {headers['host']} is not the URL's {url.netloc}")
        canonical_headers = "".join(f"{h}:{headers[h].strip().lower()}\n" for h in signed)
        canonical = "\n".join([req["method"], "/", "", canonical_headers, ";".join(signed),
                               hashlib.sha256(body).hexdigest()])
        string_to_sign = "\n".join([algorithm, str(ts), f"{date}/{service}/{term}",
                                    hashlib.sha256(canonical.encode()).hexdigest()])
        signature = Sign.sign_tc3(secret_key, date, service, string_to_sign)
        if signature != parts["Signature"]:
            fail(f"official sign_tc3 gives {signature}, request carries {parts['Signature']}")
        payload = json.loads(body)
        # A dry run shows "<redacted>" in place of a UserSig; a real one must check out.
        if payload.get("UserSig", "<redacted>") != "<redacted>":
            check_sig(app_key, payload["SdkAppId"], payload["UserId"], payload["UserSig"])
        print(json.dumps({"ok": True, "kind": "tc3", "signature": signature}))
    else:
        query = dict(urllib.parse.parse_qsl(url.query))
        if query["usersig"] == "<redacted>":
            doc = {"TLS.identifier": query["identifier"]}
        else:
            doc = check_sig(app_key, int(query["sdkappid"]), query["identifier"], query["usersig"])
        if query.get("contenttype") != "json":
            fail("contenttype must be json")
        if not 0 <= int(query["random"]) <= 4294967295:
            fail("random must be a uint32")
        json.loads(body)
        print(json.dumps({"ok": True, "kind": "im", "identifier": doc["TLS.identifier"]}))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make-sigs":
        make_sigs()
    elif cmd == "check-sig":
        check_sig(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        print(json.dumps({"ok": True}))
    elif cmd == "resign":
        resign(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
