#!/usr/bin/env bash
# Runs every benchmark once with a tiny count, so they keep building and
# working as the runtime changes (tools/bench measures; this only checks).
# Each must exit 0 and print one well-formed result line. Arguments: the
# benchmark binaries, each followed by its tiny count, then the HTTP floor
# server, the echo client and an echo server (examples/echo) to aim it at,
# then the TLS handshake client, examples/https and tests/tls_certs.sh,
# then pollux's minimal servers (http_min, echo_min), then syscall_cost.
set -euo pipefail

fail=0
while [ $# -gt 9 ]; do
  bin=$1 n=$2
  shift 2
  out=$("$bin" "$n" 2>&1) || { echo "FAIL $bin exited $?: $out"; fail=1; continue; }
  if ! grep -Eq '^name=[a-z_]+ config="[^"]+" ops=[0-9]+ seconds=[0-9.]+ ops_per_s=[0-9]+ cpu_s=[0-9.]+ peak_rss_kb=[0-9]+ ' <<<"$out"; then
    echo "FAIL $bin: bad result line: $out"
    fail=1
    continue
  fi
  echo "ok   $(basename "$bin") $n"
done

http=$1 client=$2 echo_server=$3
tls_client=$4 https_server=$5 tls_certs=$6
http_min=$7 echo_min=$8 syscall_cost=$9
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# shellcheck source=tests/serve_lib.sh
source "$(dirname "$0")/../tests/serve_lib.sh"
# serve PROGRAM: starts it on a free port (its last argument); sets $port.
serve() {
  start_server "${TEST_TMPDIR:-/tmp}/smoke_server.err" "$@" PORT
  if [ -z "$pid" ]; then echo "FAIL cannot start $1"; exit 1; fi
  pids+=("$pid")
}

# The raw epoll server and pollux's http_min answer both of two pipelined
# requests.
for server in "$http" "$http_min"; do
  serve "$server"
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
  answers=$(timeout 5 head -c 156 <&3 | grep -o 'Hello, World!' | wc -l || true)
  exec 3>&-
  if [ "$answers" != 2 ]; then
    echo "FAIL $(basename "$server"): $answers answers to 2 pipelined requests"
    fail=1
  else
    echo "ok   $(basename "$server") pipelined"
  fi
done

# Runs a load client (CLIENT CONNECTIONS ROUNDS [FLAG]) against $port: it
# must finish within 20 s and report no failed connection.
check_client() {
  local out
  if out=$(timeout 20 "$1" ${4:+"$4"} 127.0.0.1 "$port" "$2" "$3") &&
     grep -q ' failed=0$' <<<"$out"; then
    echo "ok   $(basename "$1") $2 x $3 ${4:-}"
  else
    echo "FAIL $(basename "$1"): $out"
    fail=1
  fi
}

# The echo client completes (and checks) its round trips, against
# examples/echo and pollux's echo_min.
serve "$echo_server"
check_client "$client" 4 50
serve "$echo_min"
check_client "$client" 4 50
check_client "$client" 2 50 -r  # a connection per round trip

# The TLS handshake client does full handshakes against examples/https,
# each ending in the server's close_notify (it exits 1 otherwise).
pki=$(mktemp -d)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$pki"' EXIT
"$tls_certs" "$pki"
https_at() { exec "$https_server" "$1" "$pki/server.pem" "$pki/server.key" 127.0.0.1; }
serve https_at
check_client "$tls_client" 2 3

# syscall_cost prints its cost per call and refuses a bad count.
if grep -Eq '^syscall_ns=[0-9]+ calls=1000$' <<<"$("$syscall_cost" 1000)"; then
  echo "ok   syscall_cost"
else
  echo "FAIL syscall_cost: bad line"
  fail=1
fi
if "$syscall_cost" 0 2>/dev/null; then
  echo "FAIL syscall_cost accepted 0 calls"
  fail=1
fi
exit $fail
