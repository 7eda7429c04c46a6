#!/usr/bin/env bash
# Installs what callfeed needs on Debian, and nothing twice. Safe to run again; it only
# installs what is missing.
#
#   setup.sh demo   what building and running callfeed needs (the demos, the console):
#                   GStreamer with its plugins
#   setup.sh relay  that, and nginx with the RTMP module (make demo-relay)
#   setup.sh        (all) that, and what the tests and benchmarks start: nginx with the
#                   RTMP module, ffmpeg, GStreamer's RTSP server library (the test
#                   cameras), the PostgreSQL server (throwaway instances),
#                   Chromium with ChromeDriver (the console tests), iproute2 (a WHIP
#                   test brings up lo in a network namespace), eSpeak NG (tts: inputs),
#                   and a Python venv in
#                   .venv with Tencent's official SDKs as independent clients
set -euo pipefail
cd "$(dirname "$0")/.."
scope=${1:-all}

apt_packages=(
  pkg-config ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  gstreamer1.0-alsa gstreamer1.0-pulseaudio
  gstreamer1.0-nice
)
if [ "$scope" != demo ]; then
  apt_packages+=(nginx libnginx-mod-rtmp)
fi
if [ "$scope" = all ]; then
  apt_packages+=(
    ffmpeg postgresql libgstrtspserver-1.0-dev
    chromium chromium-driver
    python3 python3-venv
    iproute2 espeak-ng
  )
fi
python_packages=(tls-sig-api-v2 tencentcloud-sdk-python-trtc)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

missing=()
for p in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: cargo is in ~/.cargo/bin; add it to PATH" >&2
  else
    echo "setup: no Rust toolchain: install one with rustup (https://rustup.rs)" >&2
  fi
  exit 1
fi

[ "$scope" = all ] || exit 0

# The tests run Tencent's own Python SDKs against our signatures.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import TLSSigAPIv2, tencentcloud.trtc' 2>/dev/null; then
  echo "setup: installing ${python_packages[*]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${python_packages[@]}"
fi
