#!/usr/bin/env bash
# `make console`: the operator console on the embedded default, with no Tencent account.
#
# `callfeed serve --emulator` runs the in-process emulator as the cloud (demo credentials;
# every callee answers after 1.5 s) and serves the API and the console on 127.0.0.1:8730
# (CALLFEED_LISTEN to change it). The API token is made up here and printed once: the
# console asks for it. Files under media-samples/ may be played (`--media-root`).
set -euo pipefail
cd "$(dirname "$0")/.."
listen=${CALLFEED_LISTEN:-127.0.0.1:8730}
token=${CALLFEED_API_TOKEN:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}
echo "API token for the console: $token"
echo "try New session with the default test: source; Ctrl-C stops the server and its sessions"
CALLFEED_API_TOKEN=$token exec target/debug/callfeed serve --emulator --listen "$listen" \
  --media-root media-samples
