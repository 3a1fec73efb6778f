#!/usr/bin/env bash
# megrez-chat as its users meet it: a real window on a virtual X server (Xvfb), typed into and
# clicked with xdotool, under the Vulkan validation layer (any message fails: the app then
# exits 3), on the bundled tiny model.
#   tests/chat/run.sh BUILD_BIN_DIR MODEL_DIR [ARTIFACT_DIR]
# Checks: a greedy reply stored in the database equals megrez-run's for the same turns; Shift+
# Enter makes a new line; Esc stops a long reply; Chinese text round-trips; the window resizes;
# after a restart the conversation is found (search, click) and continued with the experts
# streaming (the expert-cache panel live, the reply still megrez-run's); a damaged
# database is moved aside; an unwritable folder still chats; a bad model path leaves the app
# usable; a high-DPI screen scales the window and its text. Prints the frame rate while a reply streams and the idle CPU use. Screenshots go to
# ARTIFACT_DIR (default BUILD_BIN_DIR/../test-artifacts/chat).
set -euo pipefail
BIN="$(cd "$1" && pwd)"
MODEL="$(cd "$2" && pwd)"
ART="${3:-$BIN/../test-artifacts/chat}"
mkdir -p "$ART"
ART="$(cd "$ART" && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
source "$(dirname "$0")/../host-vulkan-drivers.sh"
# MEGREZ_CHAT_TEST_VALIDATION=0 measures the frame rate without the layer's overhead (README).
export MEGREZ_VALIDATION="${MEGREZ_CHAT_TEST_VALIDATION:-1}" MEGREZ_PIPELINE_CACHE=off HOME="$WORK/home"
mkdir -p "$HOME"

fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/app-*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }; done
  exit 1
}

# A display of our own: Xvfb picks a free number and writes it to fd 3.
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp -noreset 3>"$WORK/display" >"$WORK/xvfb.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/display" ] && break; sleep 0.1; done
[ -s "$WORK/display" ] || fail "Xvfb did not start: $(cat "$WORK/xvfb.log")"
export DISPLAY=":$(head -1 "$WORK/display")"
for _ in $(seq 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
xdpyinfo >/dev/null 2>&1 || fail "cannot reach the X server at $DISPLAY"

N=0
MAX_TOKENS=160  # per reply: keeps the runaway replies of a tiny model short
# Starts the app with the given flags (XDG_DATA_HOME as exported); sets APP, LOG, WIN, STATS.
start_app() {
  N=$((N + 1))
  LOG="$WORK/app-$N.log"
  STATS="$WORK/frames-$N.json"
  "$BIN/megrez-chat" --model "$MODEL" --temp 0 --repeat-penalty 1 -n $MAX_TOKENS --size 1280x800 --frame-stats "$STATS" "$@" \
    >"$LOG" 2>&1 &
  APP=$!
  PIDS+=($APP)
  WIN=""
  for _ in $(seq 300); do
    WIN=$(xdotool search --pid "$APP" --name '^megrez-chat' 2>/dev/null | head -1 || true)
    [ -n "$WIN" ] && break
    kill -0 "$APP" 2>/dev/null || fail "megrez-chat exited at start"
    sleep 0.1
  done
  [ -n "$WIN" ] || fail "no megrez-chat window appeared"
}
wait_loaded() {
  for _ in $(seq 600); do
    grep -q "megrez-chat: loaded" "$LOG" && return 0
    kill -0 "$APP" 2>/dev/null || fail "megrez-chat exited while loading"
    sleep 0.1
  done
  fail "the model did not load"
}
focus() { xdotool windowfocus --sync "$WIN"; }
type_text() { focus; xdotool type --delay "${2:-40}" "$1"; }
# Chinese is pasted, as people often enter it: xdotool types a character missing from the
# keymap by remapping a key for it, which races with an app that reads events late (under load
# the wrong or no character arrives). xclip owns the clipboard until the next copy.
paste_text() {
  printf '%s' "$1" | xclip -selection clipboard -i 2>/dev/null
  key ctrl+v
}
key() { focus; xdotool key "$@"; }
shot() { import -window root "$ART/$1.png"; }
sql() { sqlite3 -cmd ".timeout 5000" "$DB" "$1"; }
# Waits until the database holds `count` messages, the last from the assistant.
wait_messages() {
  local count="$1"
  for _ in $(seq 1200); do
    [ "$(sql "select count(*) from messages where conversation = $2")" = "$count" ] &&
      [ "$(sql "select role from messages where conversation = $2 order by id desc limit 1")" = assistant ] && return 0
    kill -0 "$APP" 2>/dev/null || fail "megrez-chat exited while replying"
    sleep 0.1
  done
  fail "no reply: conversation $2 has $(sql "select count(*) from messages where conversation = $2") messages"
}
reply() { sql "select content from messages where conversation = $1 order by id desc limit 1"; }
quit_app() {
  key ctrl+q
  local status=0
  wait "$APP" || status=$?
  [ "$status" = 0 ] || fail "megrez-chat exited with $status (3: validation messages)"
  if grep -qi "validation" "$LOG"; then fail "validation messages in $LOG"; fi
}
# megrez-run's greedy replies to the same user turns, one per line of input.
expected_replies() { printf '%s\n' "$@" | "$BIN/megrez-run" --model "$MODEL" --chat -n $MAX_TOKENS 2>/dev/null; }

# ---- 1. a conversation, compared with megrez-run ------------------------------------------------
export XDG_DATA_HOME="$WORK/data"
DB="$XDG_DATA_HOME/megrez/chats.db"
start_app
wait_loaded
shot 01-started
Q1="Who was the father of Solomon?"
Q2="And who was his father?"
type_text "$Q1"
key Return
wait_messages 2 1
type_text "$Q2"
key Return
wait_messages 4 1
shot 02-reply
mapfile -t EXPECTED < <(expected_replies "$Q1" "$Q2")
[ "$(sql "select content from messages where conversation = 1 and role = 'user' order by id limit 1")" = "$Q1" ] ||
  fail "the stored question differs from what was typed"
A1="$(sql "select content from messages where conversation = 1 and role = 'assistant' order by id limit 1")"
A2="$(reply 1)"
[ "$A1" = "${EXPECTED[0]}" ] || fail "reply 1 '$A1' != megrez-run's '${EXPECTED[0]}'"
[ "$A2" = "${EXPECTED[1]}" ] || fail "reply 2 '$A2' != megrez-run's '${EXPECTED[1]}'"
echo "ok: replies equal megrez-run's ('$A1' / '$A2')"

# ---- 2. new chat, Shift+Enter, Esc during a long reply ------------------------------------------
key ctrl+n
type_text "line one"
key shift+Return
type_text "line two"
key Return
wait_messages 2 2
[ "$(sql "select content from messages where conversation = 2 order by id limit 1")" = $'line one\nline two' ] ||
  fail "Shift+Enter did not make a new line"
echo "ok: Shift+Enter makes a new line, Enter sends"
# Alone in a conversation, this held-out question makes the tiny model loop until the reply's
# token limit (greedy); the model ends most replies within a few dozen tokens.
LONG="What verse comes after this one? And out of the tribe of Reuben, Bezer with her suburbs, and Jahazah with her suburbs,"
key ctrl+n
type_text "$LONG" 20
key Return
for _ in $(seq 300); do
  [ "$(sql "select count(*) from messages where conversation = 3")" = 1 ] && break
  sleep 0.1
done
sleep 1
shot 03-streaming
key Escape
wait_messages 2 3
STOPPED="$(sql "select stats from messages where conversation = 3 order by id desc limit 1")"
case "$STOPPED" in *'"finish":"cancelled"'*) ;; *) fail "Esc did not stop the reply: $STOPPED" ;; esac
echo "ok: Esc stopped the reply ($STOPPED)"

# ---- 3. Chinese, resize, idle CPU, frame rate ---------------------------------------------------
key ctrl+n
ZH="所罗门的父亲是谁？"
paste_text "$ZH"
key Return
wait_messages 2 4
[ "$(sql "select content from messages where conversation = 4 order by id limit 1")" = "$ZH" ] ||
  fail "the Chinese question was stored as '$(sql "select content from messages where conversation = 4 order by id limit 1")'"
shot 04-chinese
xdotool windowsize --sync "$WIN" 900 600 || true
sleep 1
shot 05-resized-small
xdotool windowsize --sync "$WIN" 1500 950 || true
sleep 1
shot 06-resized-large
kill -0 "$APP" 2>/dev/null || fail "megrez-chat died on resize"
# Idle: no frames, so (near) no CPU. /proc/PID/stat fields 14 and 15: user and system ticks.
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$APP/stat"; }
T0=$(ticks)
sleep 5
T1=$(ticks)
IDLE_PCT=$(awk -v d=$((T1 - T0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * d / hz / 5 }')
echo "figure: idle CPU ${IDLE_PCT}% of one core over 5 s"
awk -v p="$IDLE_PCT" 'BEGIN { exit !(p < 3) }' || fail "the idle app used ${IDLE_PCT}% CPU"
quit_app
FPS=$(sed -n 's/.*"streaming_fps":\([0-9.]*\).*/\1/p' "$STATS")
echo "figure: ${FPS} frames per second while replies streamed (MEGREZ_VALIDATION=$MEGREZ_VALIDATION)"
# A loose floor: under a loaded CI machine and validation the rate drops; the README has the figure.
awk -v f="$FPS" 'BEGIN { exit !(f >= 8) }' || fail "the window drew only $FPS frames per second while streaming"

# ---- 4. restart: find the conversation and continue it, experts streaming -----------------------
# Half the experts in device memory, the rest streamed from the model file: the expert-cache
# panel shows the cache at work, and the reply must still equal megrez-run's (resident).
# New conversations may run to 480 tokens here, so a reply is still going when the app quits.
start_app --expert-budget 50% -n 480
wait_loaded
key ctrl+f
type_text "father of Solomon"
sleep 1
shot 07-restart-search
# The search leaves one conversation in the list; its row is the sidebar's first.
focus
xdotool mousemove --window "$WIN" 110 101 click 1
sleep 2  # the message box takes the keyboard two frames after the click; frames are slow under load
Q3="Which book is that from?"
type_text "$Q3"
key Return
wait_messages 6 1
shot 08-continued
[ "$(sql "select content from messages where conversation = 1 and role = 'user' order by id desc limit 1")" = "$Q3" ] ||
  fail "typed after the click, '$Q3' was stored as '$(sql "select content from messages where conversation = 1 and role = 'user' order by id desc limit 1")'"
mapfile -t EXPECTED < <(expected_replies "$Q1" "$Q2" "$Q3")
[ "$(reply 1)" = "${EXPECTED[2]}" ] || fail "the continued reply '$(reply 1)' != megrez-run's '${EXPECTED[2]}'"
echo "ok: after a restart the conversation was found and continued with experts streaming ('$(reply 1)')"
# Quitting in the middle of a reply keeps what was shown.
key ctrl+n
type_text "$LONG" 20
key Return
sleep 4  # past the first tokens, also under load; 480 tokens take longer
quit_app
case "$(sql "select stats from messages where conversation = 5 and role = 'assistant'")" in
  *'"finish":"cancelled"'*) echo "ok: quitting during a reply kept the reply so far" ;;
  *) fail "quitting during a reply lost it: $(sql "select role, stats from messages where conversation = 5")" ;;
esac

# ---- 5. a high-DPI screen: text and sizes follow the content scale --------------------------------
# (Xlib reads the resource string line by line: it needs its newline.)
xprop -root -f RESOURCE_MANAGER 8s -set RESOURCE_MANAGER $'Xft.dpi:\t144\n'
start_app --size 800x500
wait_loaded
GEOMETRY=$(xdotool getwindowgeometry "$WIN" | sed -n 's/ *Geometry: //p')
shot 09-high-dpi
quit_app
xprop -root -remove RESOURCE_MANAGER
[ "$GEOMETRY" = 1200x750 ] || fail "at 144 dpi an 800x500 window should be 1200x750, got $GEOMETRY"
echo "ok: at 144 dpi the window and its text are 1.5 times larger"


# ---- 6. a damaged database, an unwritable folder, a bad model path ------------------------------
export XDG_DATA_HOME="$WORK/damaged"
DB="$XDG_DATA_HOME/megrez/chats.db"
mkdir -p "$XDG_DATA_HOME/megrez"
head -c 8192 /dev/urandom >"$DB"
cp "$DB" "$WORK/garbage"
start_app
wait_loaded
grep -q "damaged; it was moved to" "$LOG" || fail "no message about the damaged database"
ASIDE=$(ls "$XDG_DATA_HOME"/megrez/chats.db.corrupt-* | head -1)
cmp -s "$ASIDE" "$WORK/garbage" || fail "the damaged file was not kept as it was"
type_text "$Q1"
key Return
wait_messages 2 1
quit_app
echo "ok: a damaged database was moved aside ($ASIDE) and a new one used"

export XDG_DATA_HOME="$WORK/unwritable"
mkdir -p "$XDG_DATA_HOME"
echo "a file where the folder should be" >"$XDG_DATA_HOME/megrez"
start_app
wait_loaded
grep -q "will not be saved" "$LOG" || fail "no message about not saving"
type_text "$Q1"
key Return
for _ in $(seq 1200); do
  grep -qs '"replies":1' "$STATS" && break
  sleep 0.1
done
grep -qs '"replies":1' "$STATS" || fail "no reply without a database"
shot 11-not-saving
quit_app
echo "ok: with an unwritable folder the app still chats, saying it does not save"

export XDG_DATA_HOME="$WORK/data"
start_app --model "$WORK/no-such-model"
for _ in $(seq 600); do
  grep -q "no-such-model" "$LOG" && break
  sleep 0.1
done
grep -q "no-such-model" "$LOG" || fail "no one-line error for a bad model path"
sleep 1
kill -0 "$APP" 2>/dev/null || fail "a bad model path closed the app"
shot 12-bad-model
quit_app
echo "ok: a bad model path shows its error and the app stays usable"
echo "PASS (screenshots in $ART)"
