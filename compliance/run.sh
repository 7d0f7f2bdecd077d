#!/usr/bin/env bash
# Autobahn|Testsuite, cases 1.* .. 10.*, both backends, both sides (default --side both):
#   server: wstest fuzzingclient against `python -m wsframe serve --mode echo`;
#   client: wstest fuzzingserver against wsframe.connect() (compliance/client.py).
# Non-zero exit unless every case is OK or INFORMATIONAL (1: cases failed, 2: the run could not be made).
# Options are passed to run.py (see `bash compliance/run.sh --help` and docs/compliance.md).
set -euo pipefail
exec "${COMPLIANCE_DRIVER_PYTHON:-python3}" "$(dirname "$0")/run.py" "$@"
