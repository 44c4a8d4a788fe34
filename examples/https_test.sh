#!/usr/bin/env bash
# Runs the HTTPS example as a client would: usage errors, curl --cacert with
# keep-alive and ALPN, the wrong CA and the wrong host name refused,
# pipelined requests through openssl s_client, a client that stalls its
# handshake (dropped after 10 s while others are served), a graceful stop.
set -uo pipefail
https=$1
certs=$2
fail=0
# shellcheck source=tests/serve_lib.sh
source "$(dirname "$0")/../tests/serve_lib.sh"
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; else echo "ok: $2"; fi; }

pki=$TEST_TMPDIR/pki
"$certs" "$pki" || { echo "FAIL: making the test PKI"; exit 1; }

# --- Bad arguments: usage on stderr, exit 2; unreadable files: exit 1.
for args in "" "8443" "8443 a" "x a b" "0 a b" "8443 a b c d" "-t x 8443 a b" "-c 0 8443 a b" \
            "-t 1 -c 2 8443 a"; do
  # shellcheck disable=SC2086
  err=$("$https" $args 2>&1 >/dev/null)
  rc=$?
  check '[ "$rc" -eq 2 ]' "https '$args' exits 2 (got $rc)"
  check '[[ "$err" == *usage* ]]' "https '$args' prints usage on stderr"
done
err=$("$https" 8443 /nonexistent.pem "$pki/server.key" 2>&1 >/dev/null)
rc=$?
check '[ "$rc" -eq 1 ]' "a missing certificate file exits 1 (got $rc)"
check '[[ "$err" == *nonexistent.pem* ]]' "and names the file ($err)"
err=$("$https" 8443 "$pki/server.pem" "$pki/evil.key" 2>&1 >/dev/null)
rc=$?
check '[ "$rc" -eq 1 ]' "a key that does not match exits 1 (got $rc: $err)"

# --- Start the server on a free loopback port (retry if one is taken).
# With the default limits spelled out (-t 60: the handshake has min(60, 10) s).
start_server "$TEST_TMPDIR/https.err" "$https" -t 60 -c 100 PORT "$pki/server.pem" "$pki/server.key" 127.0.0.1
check '[ -n "$pid" ]' "server starts on 127.0.0.1:$port"
if [ -z "$pid" ]; then exit 1; fi
url="https://localhost:$port/"
curl_tls() { curl -s --max-time 5 --resolve "localhost:$port:127.0.0.1" "$@"; }

# --- A client that stalls its handshake: open now, checked at the end.
exec 5<>"/dev/tcp/127.0.0.1/$port"
stalled_since=$SECONDS

# --- curl: the body, keep-alive, ALPN.
body=$(curl_tls --cacert "$pki/ca.pem" "$url")
check '[ "$body" = "Hello, World!" ]' "curl --cacert gets Hello, World! (got: $body)"
log=$(curl_tls -v --cacert "$pki/ca.pem" "$url" "$url" 2>&1)
check '[[ "$log" == *"Re-using existing connection"* ]]' "curl reuses the TLS connection (keep-alive)"
check '[ "$(grep -c "Hello, World!" <<<"$log")" -ge 2 ]' "both kept-alive requests answered"
check '[[ "$log" == *"ALPN: server accepted http/1.1"* ]]' "ALPN agrees on http/1.1"
check '[[ "$log" == *"TLSv1.3"* ]]' "TLS 1.3"

# --- Refusals: an untrusted CA, the wrong host name, plain HTTP.
curl_tls --cacert "$pki/other-ca.pem" "$url" >/dev/null
rc=$?
check '[ "$rc" -eq 60 ]' "curl with an unrelated CA refuses the server (curl exit $rc, 60 = bad certificate)"
curl -s --max-time 5 --resolve "wrong.example:$port:127.0.0.1" --cacert "$pki/ca.pem" \
  "https://wrong.example:$port/" >/dev/null
rc=$?
check '[ "$rc" -eq 60 ]' "curl to a name the certificate lacks fails (curl exit $rc)"
body=$(curl_tls --cacert "$pki/ca.pem" "$url")
check '[ "$body" = "Hello, World!" ]' "the server still answers after refused handshakes"

# --- Pipelining through openssl s_client: three requests, three answers.
reply=$(printf 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
  timeout 10 openssl s_client -quiet -connect "127.0.0.1:$port" -servername localhost \
    -CAfile "$pki/ca.pem" -verify_return_error -alpn http/1.1 2>/dev/null)
check '[ "$(grep -c "HTTP/1.1 200 OK" <<<"$reply")" -eq 3 ]' "3 pipelined requests over TLS get 3 answers"
reply=$(printf 'garbage\r\n\r\n' |
  timeout 10 openssl s_client -quiet -connect "127.0.0.1:$port" -servername localhost \
    -CAfile "$pki/ca.pem" 2>/dev/null)
check '[[ "$reply" == "HTTP/1.1 400 Bad Request"* ]]' "garbage over TLS gets 400"

# --- wrk, when this wrk speaks TLS (Debian's does: it links OpenSSL).
out=$(wrk -t1 -c10 -d2s "$url" 2>&1)
echo "$out"
reqs=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' <<<"$out")
check '[ "${reqs:-0}" -gt 0 ]' "wrk over TLS completed requests (${reqs:-0})"
check '[[ "$out" != *"Non-2xx"* ]]' "every wrk answer is 200"

# --- The stalled handshake is dropped after its 10 seconds.
timeout 20 cat <&5 >/dev/null
rc=$?
waited=$(( SECONDS - stalled_since ))
check '[ "$rc" -eq 0 ] && [ "$waited" -ge 9 ]' "a stalled handshake is closed by the server after ~10 s (rc $rc, ${waited}s)"
exec 5<&-

# --- SIGTERM: graceful stop, exit 0.
kill -TERM "$pid"
wait "$pid"
rc=$?
check '[ "$rc" -eq 0 ]' "SIGTERM stops the server gracefully (exit $rc)"
cat "$TEST_TMPDIR/https.err"
exit $fail
