#!/usr/bin/env bash
# Autobahn|Testsuite (wstest fuzzingclient) against `python -m wsframe serve --mode echo`,
# both backends, cases 1.* .. 10.*. Non-zero exit unless every case is OK or INFORMATIONAL.
# Options are passed to run.py (see `bash compliance/run.sh --help` and docs/compliance.md).
set -euo pipefail
exec "${COMPLIANCE_DRIVER_PYTHON:-python3}" "$(dirname "$0")/run.py" "$@"
