#!/usr/bin/env bash
# `make demo`: what callfeed does, on the embedded default, with no Tencent account.
#
# The in-process emulator (a local Tencent cloud with a room observer) is not built yet, so
# for now the demo shows the exact, signed requests a session sends for a robot calling
# `jack` and binding a stream into the string room `demo-room`, using the SDKs' public demo
# credentials. The same commands without --dry-run talk to the real cloud.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug/callfeed

# Public demo values from Tencent's SDK samples; they open nothing.
export CALLFEED_SDKAPPID=1400000000
export CALLFEED_SDK_SECRET_KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
export TENCENTCLOUD_SECRET_ID=AKIDcallfeedDemoSecretId000000000000
export TENCENTCLOUD_SECRET_KEY=callfeedDemoSecretKey0000000000
unset CALLFEED_CONFIG CALLFEED_IM_ENDPOINT CALLFEED_TRTC_ENDPOINT

echo "== callfeed version"
"$bin" version
echo
echo "== 1. ring jack from robot, in string room demo-room (start_call_by_robot)"
"$bin" api start-call --robot robot --to jack --room demo-room --room-type string \
  --media-type video --ring-timeout 30 --dry-run
echo
echo "== 2. when jack answers, pull the stream into the same room (StartStreamIngest)"
"$bin" api start-ingest --room demo-room --room-type string --user robot \
  --url https://example.com/live/announcement.flv --dry-run
echo
echo "== 3. an invalid room is refused before anything is sent"
if "$bin" api start-call --robot robot --to jack --room 0 --room-type numeric --dry-run; then
  echo "demo: expected a refusal" >&2
  exit 1
fi
echo
echo "Dry run only: the emulator (a local Tencent cloud that pulls the stream and shows what"
echo "the callee sees) comes next; see README.md for the same commands against the real cloud."
