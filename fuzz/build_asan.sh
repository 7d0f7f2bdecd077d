#!/usr/bin/env bash
# Build wsframe's compiled backend with AddressSanitizer + UndefinedBehaviorSanitizer
# (and libFuzzer's coverage instrumentation) into a virtualenv used only for fuzzing.
#
#   bash fuzz/build_asan.sh [SOURCE_TREE]
#
# SOURCE_TREE  the wsframe checkout to build (default: the repository this script is in,
#              or $WSFRAME_SRC). It is copied to $FUZZ_VENV/wsframe-build first, so the
#              tree itself gets no build products and a normal (unsanitized) build in it
#              is never picked up by mistake.
# FUZZ_VENV    the virtualenv (default: SOURCE_TREE/.venv-fuzz).
#
# Idempotent: installs clang and the sanitizer runtimes (Debian packages) and atheris,
# Cython and setuptools (PyPI) when missing, and rebuilds the extension from scratch
# every time (about a minute), then checks that it really is instrumented.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "${1:-${WSFRAME_SRC:-$HERE/..}}" && pwd)
VENV=${FUZZ_VENV:-$SRC/.venv-fuzz}
PYTHON=${PYTHON:-python3}
ATHERIS_SPEC=${ATHERIS_SPEC:-atheris==3.0.0}

log() { printf '== %s\n' "$*"; }

[ -f "$SRC/setup.py" ] && [ -d "$SRC/csrc" ] || { echo "not a wsframe source tree: $SRC" >&2; exit 2; }

# --- clang and its sanitizer runtimes (Debian) ---------------------------------------
apt_install() {
    if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install $*" >&2; exit 1; fi
    if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -q; _APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}
if ! command -v clang >/dev/null 2>&1; then
    log "installing clang"
    apt_install clang
fi
CLANG_MAJOR=$(clang -dumpversion | cut -d. -f1)
asan_rt() { clang -print-file-name=libclang_rt.asan-x86_64.so; }
if [ ! -f "$(asan_rt)" ]; then
    log "installing the clang $CLANG_MAJOR sanitizer runtimes"
    apt_install "libclang-rt-$CLANG_MAJOR-dev"
fi
[ -f "$(asan_rt)" ] || { echo "no ASan runtime for clang $CLANG_MAJOR" >&2; exit 1; }
command -v taskset >/dev/null 2>&1 || apt_install util-linux

# --- the virtualenv ----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c 'import atheris, Cython, setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
    log "installing $ATHERIS_SPEC, Cython and setuptools into $VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "$ATHERIS_SPEC" "Cython>=3.1" "setuptools>=77" wheel
fi
ATHERIS_DIR=$("$PY" -c 'import atheris; print(atheris.path())')
PRELOAD="$ATHERIS_DIR/asan_with_fuzzer.so"
[ -f "$PRELOAD" ] || { echo "atheris came without asan_with_fuzzer.so ($ATHERIS_DIR)" >&2; exit 1; }

# --- a clean copy of the source tree ----------------------------------------------------
STAGE="$VENV/wsframe-build"
log "copying $SRC to $STAGE"
rm -rf "$STAGE"
mkdir -p "$STAGE"
items=()
for f in setup.py pyproject.toml README.md LICENSE MANIFEST.in src csrc; do
    [ -e "$SRC/$f" ] && items+=("$f")
done
tar -C "$SRC" --exclude='__pycache__' --exclude='*.so' --exclude='*.egg-info' -cf - "${items[@]}" | tar -C "$STAGE" -xf -
find "$STAGE/src" -name '*.c' -delete  # Cython's output: regenerated (C sources live in csrc/)

# --- the sanitized build ---------------------------------------------------------------
SAN_CFLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer -g -O1"
log "building with CC=clang CFLAGS=\"$SAN_CFLAGS\""
(
    cd "$STAGE"
    export CC=clang CXX=clang++ LDSHARED="clang -shared" CFLAGS="$SAN_CFLAGS" LDFLAGS=""
    export WSFRAME_REQUIRE_EXTENSIONS=1
    unset WSFRAME_NO_EXTENSIONS
    "$PY" -m pip install -q --no-build-isolation --no-deps --force-reinstall --no-cache-dir . 2>&1 \
        | grep -v "^WARNING: Location" || true
)

# --- proof that the installed extension is the instrumented one --------------------------
log "checking the installed extension"
SOS=$(cd / && LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0 WSFRAME_NO_EXTENSIONS= "$PY" - <<'PYEOF'
import glob, os, sys
import wsframe
try:
    from wsframe.protocol.backend import load
except ImportError:
    from wsframe._backend import load
c = load("cython")
assert wsframe.BACKEND == "cython", wsframe.BACKEND
root = os.path.dirname(wsframe.__file__)
assert "site-packages" in root, root
print(" ".join(sorted(glob.glob(os.path.join(root, "**", "*.so"), recursive=True))))
PYEOF
)
[ -n "$SOS" ] || { echo "no compiled extension installed" >&2; exit 1; }
for so in $SOS; do
    undefined=$(nm -D --undefined-only "$so")
    for sym in __asan_report_load __ubsan_handle __sanitizer_cov_8bit_counters_init; do
        grep -q "$sym" <<<"$undefined" || { echo "$so: no $sym: not instrumented" >&2; exit 1; }
    done
    echo "   instrumented (asan, ubsan, sancov): $so"
done

{
    echo "source=$SRC"
    echo "commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "dirty=$(git -C "$SRC" status --porcelain 2>/dev/null | grep -vc '^??' || true)"
    echo "clang=$(clang -dumpversion)"
    echo "cflags=$SAN_CFLAGS"
    echo "preload=$PRELOAD"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$VENV/wsframe-asan.stamp"
log "done: $VENV (stamp: $VENV/wsframe-asan.stamp)"
cat "$VENV/wsframe-asan.stamp"
