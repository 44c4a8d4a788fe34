#!/usr/bin/env bash
# Runs the examples as a user would: the demo's exact output and timing, and
# the echo server's argument handling and a round trip over loopback.
set -uo pipefail
hello=$1
echo_bin=$2
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; else echo "ok: $2"; fi; }
# shellcheck source=tests/serve_lib.sh
source "$(dirname "$0")/../tests/serve_lib.sh"

# --- hello: exactly two lines, in completion order, in about one second.
start=$(date +%s%N)
out=$("$hello")
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expected=$'Starting async operations...\nTask 2 complete, Task 1 complete'
check '[ "$rc" -eq 0 ]' "hello exits 0"
check '[ "$out" = "$expected" ]' "hello prints the two lines (got: $out)"
check '[ "$ms" -ge 1000 ]' "hello takes at least 1 s (sleeps never end early): ${ms} ms"
check '[ "$ms" -lt 1450 ]' "hello's sleeps overlap (well under 1.5 s): ${ms} ms"

# --- hello with PX_TRACE: the trace file shows both sleeping tasks' polls.
trace="${TEST_TMPDIR:-/tmp}/t.json"
rm -f "$trace"
PX_TRACE="$trace" "$hello" >/dev/null
polls=$(grep -o '"name":"say_after","cat":"poll"' "$trace" 2>/dev/null | wc -l)
check '[ "$polls" -ge 2 ]' "PX_TRACE shows the say_after tasks (polls: $polls)"
check 'tail -c 4 "$trace" | grep -q "]}"' "the trace file is closed JSON"

# --- echo: bad arguments get a usage message on stderr and exit code 2.
for args in "" "notaport" "0" "70000" "1 2 3" "-t 0 7000" "-t x 7000" "-c 0 7000" \
            "-c 10x 7000" "-x 7000" "-t"; do
  # shellcheck disable=SC2086
  err=$("$echo_bin" $args 2>&1 >/dev/null)
  rc=$?
  check '[ "$rc" -eq 2 ]' "echo '$args' exits 2 (got $rc)"
  check '[[ "$err" == *usage* || "$err" == *Usage* ]]' "echo '$args' prints usage on stderr"
done

# --- echo: a round trip on a loopback port.
reply=""
start_server "${TEST_TMPDIR:-/tmp}/echo.err" "$echo_bin" PORT 127.0.0.1
if [ -n "$pid" ] && exec 3<>"/dev/tcp/127.0.0.1/$port"; then
  printf 'hello pollux\n' >&3
  read -r -t 5 reply <&3
  exec 3>&-
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check '[ "$reply" = "hello pollux" ]' "echo server echoes a line (got: $reply)"

# --- echo -t 1: a silent client is closed after its idle second.
start_server "${TEST_TMPDIR:-/tmp}/echo_idle.err" "$echo_bin" -t 1 -c 5 PORT 127.0.0.1
exec 5<>"/dev/tcp/127.0.0.1/$port"
start=$SECONDS
read -r -t 10 idle_reply <&5; idle_rc=$?
waited=$(( SECONDS - start ))
exec 5>&-
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
check '[ "$idle_rc" -ne 0 ] && [ -z "$idle_reply" ] && [ "$waited" -lt 8 ]' \
  "echo -t 1 closes a silent client (read rc $idle_rc after ${waited}s)"

# --- echo: SIGTERM with a client connected: stop, drain, exit 0.
start_server "${TEST_TMPDIR:-/tmp}/echo_term.err" "$echo_bin" PORT 127.0.0.1
exec 4<>"/dev/tcp/127.0.0.1/$port"
printf 'one\n' >&4; read -r -t 5 first <&4
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"; rc=$?
exec 4>&-
check '[ "$first" = "one" ] && [ "$rc" -eq 0 ]' "echo exits 0 on SIGTERM with a client connected (rc $rc)"

exit $fail
