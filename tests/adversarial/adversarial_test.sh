#!/usr/bin/env bash
# Runs the adversarial client (adversarial.py, next to this script) against
# one example server: adversarial_test.sh SERVER BINARY [OPTIONS].
exec python3 "$(dirname "$0")/adversarial.py" "$@"
