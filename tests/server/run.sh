#!/usr/bin/env bash
# megrez-server as its users meet it: started on the tiny model under the validation layer and
# spoken to over loopback by the official `openai` npm package (pinned, installed here at test
# time), by plain fetch() for every error case, and by 8 concurrent clients.
#   tests/server/run.sh BUILD_BIN_DIR MODEL_DIR
# Replies are compared with megrez-run's for the same messages (greedy). Any validation
# message in a server's log fails the test.
set -euo pipefail
BIN="$1"
MODEL="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export MEGREZ_VALIDATION=1 MEGREZ_PIPELINE_CACHE=off
CTX=256

fail() { echo "FAIL: $*" >&2; exit 1; }

# The client library, pinned (npm's cache makes a second run offline-fast).
OPENAI_VERSION=4.104.0
mkdir -p "$WORK/npm"
(cd "$WORK/npm" && echo '{"private": true, "type": "module"}' > package.json &&
  npm install --no-audit --no-fund --loglevel=error "openai@$OPENAI_VERSION" >/dev/null) ||
  fail "npm could not install openai@$OPENAI_VERSION"
cp "$HERE"/*.mjs "$WORK/npm/"

# Starts a server with the given flags; sets PORT and LOG. Waits for its "listening" line.
start_server() {
  LOG="$WORK/server-$#-$RANDOM.log"
  # Created here, not by the background job's redirection: the job may not have run yet when
  # the loop below first reads it (a missing file made `sed` fail and set -e end the test
  # without a message, on a loaded machine).
  : >"$LOG"
  "$BIN/megrez-server" --port 0 --ctx $CTX "$@" >>"$LOG" 2>&1 &
  PIDS+=($!)
  SERVER_PID=$!
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$LOG")
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "megrez-server exited at start: $(cat "$LOG")"
    sleep 0.1
  done
  fail "megrez-server did not start listening: $(cat "$LOG")"
}
wait_ready() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ] && return 0
    sleep 0.1
  done
  fail "megrez-server never became ready: $(cat "$LOG")"
}
stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || fail "megrez-server did not stop cleanly on SIGTERM: $(cat "$LOG")"
  grep -q "megrez-server: stopped" "$LOG" || fail "no clean stop: $(cat "$LOG")"
  if grep -Eiq "vulkan (error|warning)|validation" "$LOG"; then fail "validation messages: $(cat "$LOG")"; fi
}

# ---- 1. /health while loading, and a load failure: a model whose config.json is a FIFO holds
# the load at open() until we open its other end; the loader then refuses the non-file.
mkdir "$WORK/held"
for f in "$MODEL"/*; do [ -f "$f" ] && ln -s "$f" "$WORK/held/"; done
rm "$WORK/held/config.json"
mkfifo "$WORK/held/config.json"
start_server --model "$WORK/held"
health=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/health")
[[ "$health" == *'"status":"loading"'*' 503' ]] || fail "/health while loading: $health"
chat=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/v1/chat/completions" -d '{"messages":[{"role":"user","content":"hi"}]}')
[[ "$chat" == *'"code":"model_loading"'*' 503' ]] || fail "a request while loading: $chat"
exec 3<>"$WORK/held/config.json"  # open the writer end: the load goes on, and fails
status=0
wait "$SERVER_PID" || status=$?
exec 3>&-
[ "$status" = 1 ] || fail "a failed load should exit 1, got $status: $(cat "$LOG")"
[ "$(grep -c '^megrez-server: ' "$LOG")" = 2 ] && grep -q "not a regular file" "$LOG" ||
  fail "a failed load should print one clear line: $(cat "$LOG")"
echo "ok: /health 503 while loading, a failed load exits 1 with one line"

# ---- 2. Reference replies from megrez-run (greedy, same context): one turn, and two turns.
Q1="Who was the father of Solomon?"
Q2="And who was his father?"
"$BIN/megrez-run" --model "$MODEL" --ctx $CTX --chat -n 48 <<<"$Q1" >"$WORK/one.txt" 2>"$WORK/one.err"
printf '%s\n%s\n' "$Q1" "$Q2" | "$BIN/megrez-run" --model "$MODEL" --ctx $CTX --chat -n 48 >"$WORK/two.txt" 2>"$WORK/two.err"
PROMPT_TOKENS=$(sed -n 's/.*prefill \([0-9]*\) tokens.*/\1/p' "$WORK/one.err")
[ -n "$PROMPT_TOKENS" ] || fail "megrez-run printed no prefill count: $(cat "$WORK/one.err")"

# ---- 3. The openai client and every error case, on one server; then API keys on another.
start_server --model "$MODEL" --max-body 65536 --parallel 2
wait_ready
node "$WORK/npm/openai_client.mjs" "http://127.0.0.1:$PORT" "$WORK/one.txt" "$WORK/two.txt" "$PROMPT_TOKENS" "$Q1" "$Q2"
node "$WORK/npm/errors.mjs" "http://127.0.0.1:$PORT" $CTX
stop_server

start_server --model "$MODEL" --api-key "s3cret key"
wait_ready
node "$WORK/npm/api_key.mjs" "http://127.0.0.1:$PORT" "s3cret key"
stop_server
MEGREZ_API_KEY=fromenv start_server --model "$MODEL"
wait_ready
node "$WORK/npm/api_key.mjs" "http://127.0.0.1:$PORT" fromenv
stop_server

# ---- 4. Load: 8 clients at once on 4 slots with a queue of 8.
start_server --model "$MODEL" --parallel 4 --queue 8
wait_ready
node "$WORK/npm/load.mjs" "http://127.0.0.1:$PORT" 8
stop_server
echo "server: all passed"
