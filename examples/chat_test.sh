#!/usr/bin/env bash
# Drives examples/chat with three bash /dev/tcp clients: names, a message
# from one reaching the others with the sender's name, a leave announced,
# and SIGTERM ending the server gracefully (clients told, exit status 0).
set -u
chat=$1
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: want [$3] got [$2]"; fail=1; fi; }
err="${TEST_TMPDIR:-/tmp}/chat.err"
# shellcheck source=tests/serve_lib.sh
source "$(dirname "$0")/../tests/serve_lib.sh"

start_server "$err" "$chat" PORT
if [ -z "$pid" ]; then echo "FAIL: the server did not start"; exit 1; fi
trap 'kill -9 $pid 2>/dev/null' EXIT

# recv FD: one line from the client on FD, without the CR/LF, within 5 s.
recv() { local l=""; IFS= read -r -t 5 l <&"$1"; printf '%s' "${l%$'\r'}"; }
exec 3<>"/dev/tcp/127.0.0.1/$port" 4<>"/dev/tcp/127.0.0.1/$port" 5<>"/dev/tcp/127.0.0.1/$port"
check "prompt" "$(recv 3)" "Please enter your username:"
printf 'alice\n' >&3
# Joining is asynchronous and unobservable to the one who joins (as in
# tokio's chat.rs): give the server a moment to register alice before bob
# joins, else a multi-threaded executor may register them the other way.
sleep 0.5
check "prompt 2" "$(recv 4)" "Please enter your username:"
printf 'bob\r\n' >&4          # telnet's CRLF is taken too
check "alice sees bob join" "$(recv 3)" "bob has joined the chat"
sleep 0.5                      # bob registered too, see above
check "prompt 3" "$(recv 5)" "Please enter your username:"
printf 'carol\n' >&5
check "alice sees carol join" "$(recv 3)" "carol has joined the chat"
check "bob sees carol join" "$(recv 4)" "carol has joined the chat"

printf 'hello everyone\n' >&3
check "bob gets alice's message" "$(recv 4)" "alice: hello everyone"
check "carol gets alice's message" "$(recv 5)" "alice: hello everyone"
printf 'hi alice\n' >&5
check "alice gets carol's message" "$(recv 3)" "carol: hi alice"
check "bob gets carol's message" "$(recv 4)" "carol: hi alice"

exec 5>&-                      # carol leaves
check "alice sees carol leave" "$(recv 3)" "carol has left the chat"
check "bob sees carol leave" "$(recv 4)" "carol has left the chat"

kill -TERM "$pid"
check "alice told of the shutdown" "$(recv 3)" "server shutting down"
check "bob told of the shutdown" "$(recv 4)" "server shutting down"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid"
check "SIGTERM exits 0" "$?" "0"
exec 3>&- 4>&-
if [ $fail -ne 0 ]; then echo "server log:"; cat "$err"; fi
exit $fail
