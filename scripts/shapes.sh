#!/usr/bin/env bash
# `make demo-relay` / `make demo-direct`: the two deployment shapes beyond `make demo` (where
# the node serves the stream itself), each on the embedded emulator, no Tencent account.
#
#   relay   the node pushes the session's stream over RTMP to a relay and the cloud pulls the
#           relay's play URL: a local nginx-rtmp stands in for Tencent CSS / SRS.
#   direct  the announcement is made once with `callfeed announce`, put on a static web
#           server (standing in for a CDN), and the cloud pulls that URL itself: callfeed runs
#           no pipeline while it plays.
set -euo pipefail
cd "$(dirname "$0")/.."
callfeed=target/debug/callfeed
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "shapes: nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

case "${1:-}" in
  relay)
    port=$(free_port)
    cat >"$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1;
pid $work/nginx.pid; error_log $work/error.log warn;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$port; chunk_size 4096;
  application live { live on; allow publish 127.0.0.1; deny publish all; } } }
CONF
    nginx -c "$work/nginx.conf" -p "$work" 2>/dev/null &
    pids+=($!)
    wait_for_port "$port"
    echo "relay: nginx-rtmp on 127.0.0.1:$port"
    "$callfeed" call --emulator --to jack --callee-answers-after 1000 \
      --room relay-demo --media test:black+tone=440 --media-type audio --max-duration 4 \
      --relay-push "rtmp://127.0.0.1:$port/live/{stream}" \
      --relay-play "rtmp://127.0.0.1:$port/live/{stream}"
    ;;
  direct)
    mp4=$("$callfeed" announce media-samples/tone-440hz-2s.ogg --profile audio)
    cp "$mp4" "$work/welcome.mp4"
    port=$(free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$work" "$port" >/dev/null 2>&1 &
    pids+=($!)
    wait_for_port "$port"
    echo "direct: the announcement is at http://127.0.0.1:$port/welcome.mp4"
    "$callfeed" call --emulator --to jack --callee-answers-after 1000 \
      --room direct-demo --media "http://127.0.0.1:$port/welcome.mp4" --media-type audio
    ;;
  *)
    echo "usage: $0 relay|direct" >&2
    exit 2
    ;;
esac
