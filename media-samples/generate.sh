#!/usr/bin/env bash
# Re-creates the committed samples from GStreamer test sources. Needs gstreamer1.0-tools and
# the base/good plugins (`make setup`).
set -euo pipefail
cd "$(dirname "$0")"
gst-launch-1.0 -q audiotestsrc wave=sine freq=440 num-buffers=100 samplesperbuffer=960 \
  ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! opusenc bitrate=32000 \
  ! oggmux ! filesink location=tone-440hz-2s.ogg
ls -l tone-440hz-2s.ogg
