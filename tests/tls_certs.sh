#!/usr/bin/env bash
# Makes a throwaway PKI for the TLS tests in directory $1 (nothing here is
# committed, least of all a private key):
#   ca.pem / ca.key          the test CA
#   server.pem / server.key  localhost and 127.0.0.1, signed by the CA
#   client.pem / client.key  a client certificate signed by the CA
#   other-ca.pem             an unrelated CA (trusting it alone must fail)
#   evil.pem / evil.key      localhost, signed by the unrelated CA
# P-256 keys: generating them takes milliseconds, RSA keys seconds.
set -euo pipefail
d=$1
mkdir -p "$d"
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}
leaf() {  # name ca subject san
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
ca ca "pollux test CA"
ca other-ca "pollux unrelated CA"
leaf server ca localhost "DNS:localhost,IP:127.0.0.1"
leaf client ca "pollux test client" "DNS:client.test"
leaf evil other-ca localhost "DNS:localhost,IP:127.0.0.1"
