#!/usr/bin/env bash
# Runs the HTTP example as a client would: usage errors, curl with
# keep-alive, pipelined requests on one connection, 431 and 400 answers,
# Host validation (RFC 9112 section 3.2), a short wrk run without socket
# errors; then, with http_test_client.py: a graceful stop on SIGTERM that
# finishes the requests in flight and exits 0, the header, body, idle and
# write timeouts (-t 1), and the connection cap (-c 2).
set -uo pipefail
http=$1
client=$2
fail=0
# shellcheck source=tests/serve_lib.sh
source "$(dirname "$0")/../tests/serve_lib.sh"
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; else echo "ok: $2"; fi; }

# --- Bad arguments: usage on stderr, exit 2.
for args in "" "x" "0" "65536" "1 2 3" "8080 localhost" "-t" "-t 1" "-t x 8080" \
            "-t -1 8080" "-c 0 8080" "-c x 8080" "-x 1 8080" "-t 1 -c 2 1 2 3"; do
  # shellcheck disable=SC2086
  err=$("$http" $args 2>&1 >/dev/null)
  rc=$?
  check '[ "$rc" -eq 2 ]' "http '$args' exits 2 (got $rc)"
  check '[[ "$err" == *usage* ]]' "http '$args' prints usage on stderr"
done

# --- Start the server on a free loopback port (retry if one is taken).
start_server "$TEST_TMPDIR/http.err" "$http" PORT 127.0.0.1
check '[ -n "$pid" ]' "server starts on 127.0.0.1:$port"
if [ -z "$pid" ]; then exit 1; fi
url="http://127.0.0.1:$port/"

# --- curl: the body, and two requests over one kept-alive connection.
body=$(curl -s --max-time 5 "$url")
check '[ "$body" = "Hello, World!" ]' "curl gets Hello, World! (got: $body)"
log=$(curl -s -v --max-time 5 "$url" "$url" 2>&1)
check '[[ "$log" == *"Re-using existing connection"* ]]' "curl reuses the connection (keep-alive)"
check '[ "$(grep -c "Hello, World!" <<<"$log")" -ge 2 ]' "both kept-alive requests answered"
headers=$(curl -s -D - -o /dev/null --max-time 5 "$url")
check '[[ "$headers" == *"Content-Type: text/plain"* ]]' "Content-Type is text/plain"
check '[[ "$headers" == *"Content-Length: 13"* ]]' "Content-Length is 13"

# --- Pipelining: three requests in one write, three answers in order.
raw() {  # sends $1 on a new connection, prints everything until close
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"; printf "%b" "$1" >&3; cat <&3' "$port" "$1"
}
reply=$(raw 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
rc=$?
check '[ "$(grep -c "HTTP/1.1 200 OK" <<<"$reply")" -eq 3 ]' "3 pipelined requests get 3 answers"
check '[ "$(grep -c "Hello, World!" <<<"$reply")" -eq 3 ]' "3 pipelined bodies"
check '[ "$rc" -eq 0 ]' "the server closes after Connection: close (no timeout: rc $rc)"

# --- Errors: 431 for an oversized head, 400 for garbage; both then close.
big=$(head -c 9000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 -H "X-Big: $big" "$url")
check '[ "$code" = "431" ]' "an oversized request gets 431 (got $code)"
reply=$(raw 'garbage\r\n\r\n')
check '[[ "$reply" == "HTTP/1.1 400 Bad Request"* ]]' "garbage gets 400 (got: ${reply%%$'\r'*})"
reply=$(raw 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/9\r\n\r\n')
check '[[ "$reply" == *"200 OK"*"400 Bad Request"* ]]' "answers stay in order when a pipelined request is bad"

# --- Host (RFC 9112 section 3.2): HTTP/1.1 needs exactly one, and valid;
# HTTP/1.0 may leave it out. A 400 closes the connection (raw waits for it).
for req in 'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: a b\r\n\r\n' 'GET / HTTP/1.1\r\nHost: a@b\r\n\r\n' \
           'GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n'; do
  reply=$(raw "$req")
  rc=$?
  check '[[ "$reply" == "HTTP/1.1 400 Bad Request"* ]] && [ "$rc" -eq 0 ]' "'$req' gets 400 and is closed (rc $rc: ${reply%%$'\r'*})"
done
reply=$(raw 'GET / HTTP/1.0\r\n\r\n')
check '[[ "$reply" == "HTTP/1.1 200 OK"*"Hello, World!" ]]' "HTTP/1.0 without Host is answered"
reply=$(raw 'GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n')
check '[[ "$reply" == "HTTP/1.1 200 OK"*"Hello, World!" ]]' "Host: [::1]:8080 is answered"
code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 -H "Host:" "$url")
check '[ "$code" = "400" ]' "curl without Host gets 400 (got $code)"

# --- wrk: a 10-second run with no socket errors and some requests (the
# issue asks for 10 s under every reactor; the matrix runs this per pair).
# A request counts as timed out after 5 s, not wrk's default 2: on a CI
# machine running the matrix's tests side by side a whole process can stall
# for seconds (one run saw a 260 ms poll and wrk at 30k requests/s against
# 65-85k alone, then 9 timeouts), while a lost wake-up stalls a connection
# for good and is still counted at each of wrk's 2-second checks after 5 s.
out=$(wrk -t1 -c10 -d10s --timeout 5s "$url" 2>&1)
echo "$out"
check '[[ "$out" != *"Socket errors"* ]]' "wrk reports no socket errors"
reqs=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' <<<"$out")
check '[ "${reqs:-0}" -gt 0 ]' "wrk completed requests (${reqs:-0})"
check '[[ "$out" != *"Non-2xx"* ]]' "every wrk answer is 200"

body=$(curl -s --max-time 5 "$url")
check '[ "$body" = "Hello, World!" ]' "server still answers after wrk"

# --- SIGTERM with requests in flight: an idle client is closed, a request
# half sent is finished, a slow reader gets every answer in full; exit 0.
python3 "$client" shutdown "$port" "$pid" || fail=1
wait "$pid"
rc=$?
check '[ "$rc" -eq 0 ]' "SIGTERM stops the server gracefully (exit $rc)"
cat "$TEST_TMPDIR/http.err"

# --- Timeouts (-t 1: head, body, idle and write limits of 1 s) and the
# connection cap (-c 2), each on a server of its own.
scenario() {  # scenario CASE OPTIONS...
  local case=$1
  shift
  start_server "$TEST_TMPDIR/http_$case.err" "$http" "$@" PORT 127.0.0.1
  check '[ -n "$pid" ]' "server $* starts on 127.0.0.1:$port"
  [ -n "$pid" ] || return
  python3 "$client" "$case" "$port" || fail=1
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  check '[ "$rc" -eq 0 ]' "server $* exits 0 on SIGTERM (exit $rc)"
}
scenario timeouts -t 1
scenario stalled_reader -t 1 -c 1
scenario cap -c 2
exit $fail
