#!/usr/bin/env bash
# `make demo`: callfeed's main job on the embedded default, with no Tencent account.
#
# `callfeed call --emulator` starts an in-process emulator of Tencent's cloud whose room
# observer really pulls and decodes the stream, rings the simulated callee `jack` from
# `robot` (he answers after 2 s), binds the committed announcement into the call's string
# room with StartStreamIngest once he answers, ends the call when it has played, and prints
# what the room observer saw: what jack heard. Without --emulator, the same command runs
# against Tencent Cloud with the credentials in the environment (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec target/debug/callfeed call --emulator \
  --robot robot --to jack --callee-answers-after 2000 \
  --room demo-room --room-type string \
  --media media-samples/tone-440hz-2s.ogg --media-type audio
