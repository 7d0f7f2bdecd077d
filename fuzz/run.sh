#!/usr/bin/env bash
# Run one fuzz target under the sanitized build, pinned to one CPU.
#
#   bash fuzz/run.sh TARGET SECONDS [libFuzzer options...]   a campaign of SECONDS
#   bash fuzz/run.sh TARGET FILE... [libFuzzer options...]   replay inputs (crash files, seeds)
#   bash fuzz/run.sh --stats TARGET DIR...                    what a corpus reaches (corpus_stats.py)
#
# TARGET: frame_reader | handshake | server_conn | client_conn
# Environment:
#   WSFRAME_SRC  source tree the venv was built from (default: this repository)
#   FUZZ_VENV    the sanitized venv (default: $WSFRAME_SRC/.venv-fuzz); built by
#                fuzz/build_asan.sh first if it has no wsframe-asan.stamp
#   FUZZ_CPU     CPU to pin to (default 0)
#   FUZZ_WORK    working corpora and crash artifacts (default: fuzz/.work, not in git)
#   FUZZ_KNOWN   finding categories to let pass (comma-separated), to go on past known ones
#   FUZZ_UBSAN_SUPP  UBSan suppressions (default fuzz/ubsan-known.supp; empty: none)
# The working corpus is $FUZZ_WORK/corpus/TARGET, seeded from fuzz/corpus/TARGET (read only);
# crashes land in $FUZZ_WORK/artifacts/TARGET/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TARGETS="frame_reader handshake server_conn client_conn"
usage() { echo "usage: bash fuzz/run.sh {${TARGETS// /|}} SECONDS|FILE... [libFuzzer options]" >&2; exit 2; }
[ $# -ge 2 ] || usage
STATS=
if [ "$1" = --stats ]; then STATS=1; shift; fi
TARGET=$1; shift
case " $TARGETS " in *" $TARGET "*) ;; *) usage ;; esac

SRC=$(cd "${WSFRAME_SRC:-$HERE/..}" && pwd)
export FUZZ_VENV=${FUZZ_VENV:-$SRC/.venv-fuzz}
CPU=${FUZZ_CPU:-0}
WORK=${FUZZ_WORK:-$HERE/.work}

if [ ! -f "$FUZZ_VENV/wsframe-asan.stamp" ]; then
    bash "$HERE/build_asan.sh" "$SRC"
fi
PY="$FUZZ_VENV/bin/python"
PRELOAD=$(sed -n 's/^preload=//p' "$FUZZ_VENV/wsframe-asan.stamp")
command -v taskset >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q util-linux; }

export LD_PRELOAD="$PRELOAD"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:symbolize=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# Known UB findings are suppressed (FUZZ_UBSAN_SUPP= empty: report them all again).
SUPP=${FUZZ_UBSAN_SUPP-$HERE/ubsan-known.supp}
[ -n "$SUPP" ] && [ -f "$SUPP" ] && UBSAN_OPTIONS="$UBSAN_OPTIONS:suppressions=$SUPP"
export PYTHONMALLOC=malloc   # every Python object from malloc: ASan sees overflows of bytes/bytearray buffers
export PYTHONPATH="$HERE/targets"
export PATH="$FUZZ_VENV/bin:$PATH"  # the targets' "#!/usr/bin/env python3": libFuzzer re-runs them (-minimize_crash, -fork)
export PYTHONHASHSEED=0
unset WSFRAME_NO_EXTENSIONS
SYMB=$(command -v llvm-symbolizer || ls /usr/bin/llvm-symbolizer-* /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | head -1 || true)
[ -n "$SYMB" ] && export ASAN_SYMBOLIZER_PATH="$SYMB"

if [ -n "$STATS" ]; then
    exec taskset -c "$CPU" "$PY" "$HERE/corpus_stats.py" "$TARGET" "$@"
fi
COMMON=(-rss_limit_mb=4096 -timeout=60 -max_len=8192 -print_final_stats=1)
if [[ "$1" =~ ^[0-9]+$ ]]; then
    SECONDS_=$1; shift
    mkdir -p "$WORK/corpus/$TARGET" "$WORK/artifacts/$TARGET"
    SEEDS="$HERE/corpus/$TARGET"
    [ -d "$SEEDS" ] || SEEDS=
    echo "== $TARGET for ${SECONDS_}s on CPU $CPU; venv $FUZZ_VENV ($(sed -n 's/^commit=//p' "$FUZZ_VENV/wsframe-asan.stamp"))"
    exec taskset -c "$CPU" "$PY" "$HERE/targets/$TARGET.py" "${COMMON[@]}" \
        -max_total_time="$SECONDS_" -artifact_prefix="$WORK/artifacts/$TARGET/" "$@" \
        "$WORK/corpus/$TARGET" ${SEEDS:+"$SEEDS"}
else
    exec taskset -c "$CPU" "$PY" "$HERE/targets/$TARGET.py" "${COMMON[@]}" "$@"
fi
