#!/usr/bin/env bash
# A campaign of one target that goes on past findings: run.sh until SECONDS have passed.
#
#   bash fuzz/campaign.sh TARGET SECONDS [LOG]
#
# Each time libFuzzer stops on a Python finding ([category] in the log), the category is
# added to FUZZ_KNOWN and the run resumes from the same working corpus for the time left,
# so one early finding does not end the campaign. A sanitizer crash (ASan/UBSan) also
# resumes, after its artifact is kept. Segments append to LOG (default
# $FUZZ_WORK/logs/TARGET.log); their summary lines go to LOG.summary.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TARGET=$1; TOTAL=$2
export FUZZ_WORK=${FUZZ_WORK:-$HERE/.work}
LOG=${3:-$FUZZ_WORK/logs/$TARGET.log}
mkdir -p "$(dirname "$LOG")"
: > "$LOG"; : > "$LOG.summary"
start=$(date +%s); segment=0
while :; do
    left=$(( TOTAL - ($(date +%s) - start) ))
    [ "$left" -ge 10 ] || break
    segment=$((segment + 1))
    echo "== segment $segment: ${left}s left, FUZZ_KNOWN=${FUZZ_KNOWN:-}" | tee -a "$LOG.summary" >> "$LOG"
    seglog="$LOG.seg$segment"
    bash "$HERE/run.sh" "$TARGET" "$left" > "$seglog" 2>&1
    rc=$?
    cat "$seglog" >> "$LOG"
    { grep -E "INITED|DONE|stat::" "$seglog"; grep -m1 -E "^Finding: |SUMMARY: " "$seglog"; grep -E "^artifact_prefix|Test unit written" "$seglog"; echo "rc=$rc"; } >> "$LOG.summary"
    [ "$rc" -eq 0 ] && break
    cat=$(grep -m1 -oE "^Finding: \[[^]]+\]" "$seglog" | sed -E 's/.*\[(.*)\]/\1/')
    if [ -n "$cat" ]; then
        export FUZZ_KNOWN="${FUZZ_KNOWN:+$FUZZ_KNOWN,}$cat"
    elif ! grep -qE "Test unit written" "$seglog"; then
        echo "stopped without an artifact (rc=$rc): not resuming" >> "$LOG.summary"; break
    fi
done
echo "== campaign over after $(( $(date +%s) - start ))s" >> "$LOG.summary"
