#!/usr/bin/env bash
# `make demo`: callfeed's main job on the embedded default, with no Tencent account.
#
# Starts the emulator (a local Tencent cloud whose room observer really pulls and decodes
# every stream), rings the simulated callee `jack` from `robot` (he answers after 2 s),
# binds the committed announcement into the call's string room, and prints what the room
# observer saw: what jack would have heard. Until `callfeed call` lands, the steps are
# `callfeed api` commands, the same ones that work against the real cloud.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/debug/callfeed
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Public demo values from Tencent's SDK samples; they open nothing.
export CALLFEED_SDKAPPID=1400000000
export CALLFEED_SDK_SECRET_KEY=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
export TENCENTCLOUD_SECRET_ID=AKIDcallfeedDemoSecretId000000000000
export TENCENTCLOUD_SECRET_KEY=callfeedDemoSecretKey0000000000
export CALLFEED_REGION=ap-singapore
cat > "$work/demo.toml" <<'TOML'
[emulator]
pace = "realtime"
behaviours.jack = { action = "answer", after_ms = 2000 }
TOML
export CALLFEED_CONFIG="$work/demo.toml"

json() { python3 -c "import json,sys; v=json.load(sys.stdin); print($1)"; }
wait_until() { # DESCRIPTION SECONDS COMMAND...: run COMMAND until it succeeds, at most SECONDS
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "demo: timed out waiting for $what" >&2; exit 1; fi
    sleep 0.2
  done
}

echo "== starting the emulator"
"$bin" emulator --listen 127.0.0.1:0 > "$work/endpoints.json" &
pids+=($!)
wait_until "the emulator" 10 test -s "$work/endpoints.json"
cat "$work/endpoints.json"
export CALLFEED_IM_ENDPOINT=$(json 'v["im_endpoint"]' < "$work/endpoints.json")
export CALLFEED_TRTC_ENDPOINT=$(json 'v["trtc_endpoint"]' < "$work/endpoints.json")
control=$(json 'v["control"]' < "$work/endpoints.json")

# The announcement has to be at a URL the cloud can pull: nginx (with Range support, which
# players need to seek in a file) serves media-samples/ on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1;
pid $work/nginx.pid; error_log $work/nginx-error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy; fastcgi_temp_path $work/fcgi;
  uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  types { audio/ogg ogg; video/mp4 mp4; audio/mpeg mp3; audio/wav wav; }
  server { listen 127.0.0.1:$port; root $PWD/media-samples; }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
media_url="http://127.0.0.1:$port/tone-440hz-2s.ogg"
served() { python3 -c "import urllib.request; urllib.request.urlopen('$media_url')" 2>/dev/null; }
wait_until "nginx" 10 served

echo
echo "== 1. robot rings jack in the string room demo-room"
call_id=$("$bin" api start-call --robot robot --to jack --room demo-room --room-type string \
  --media-type audio | json 'v["response"]["CallId"]')
echo "CallId $call_id"

echo "== 2. waiting for jack to answer"
answered() { "$bin" api get-call-info --call-id "$call_id" \
  | json 'any(u["User_Account"]=="jack" and u["Status"]=="Calling" for u in v["response"]["UserList"])' | grep -q True; }
wait_until "jack to answer" 15 answered
echo "jack answered"

echo "== 3. the announcement is bound into the same room (StartStreamIngest)"
task_id=$("$bin" api start-ingest --room demo-room --room-type string --user robot \
  --url "$media_url" --repeat 1 | json 'v["response"]["TaskId"]')
echo "TaskId $task_id"

echo "== 4. the room observer plays it in real time"
task_url="$control/tasks/$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$task_id")"
played() { python3 -c "import json,urllib.request; v=json.load(urllib.request.urlopen('$task_url')); exit(v['status']!='NotExist')" 2>/dev/null; }
wait_until "the announcement to finish" 20 played

echo "== 5. what jack heard (the emulator's view of room demo-room)"
python3 - "$control" "$call_id" <<'PY'
import json, sys, urllib.request
control, call_id = sys.argv[1], sys.argv[2]
call = json.load(urllib.request.urlopen(f"{control}/calls/{call_id}"))
task = call["media"][0]
print(f"  call {call['call_id']}: {call['state']}, callee {call['members'][0]['user_id']} {call['members'][0]['state']}")
print(f"  task {task['task_id'][:16]}... {task['phase']}: {task['audio_ms']} ms of audio, "
      f"dominant tone {task['dominant_hz']} Hz at {task['audio_level_db']} dB, "
      f"first media {task['first_media_ms']} ms after StartStreamIngest, "
      f"{task['gaps_over_500ms']} gaps, errors {task['errors']}")
if task["phase"] != "completed" or not task["audio_ms"]:
    sys.exit("demo: the announcement did not play through")
PY

echo "== 6. hang up (end_call)"
"$bin" api end-call --call-id "$call_id" > /dev/null
echo "call ended"
