#!/usr/bin/env bash
# Build KenLM's lmplz, query and build_binary: the oracles tests/test_kenlm.py checks lmlab against.
#
# `pip install kenlm` compiles only the Python query module, not the estimator, so the binaries are
# built here from the same PyPI sdist (kenlm 0.3.0). KenLM is LGPL-2.1: fetched at set-up, never vendored.
# Idempotent and safe to run concurrently: it does nothing once the binaries exist.
#
#   tests/oracles/build_kenlm.sh        binaries in ${LMLAB_ORACLE_DIR:-$HOME/.cache/lmlab/oracles}/kenlm/bin
set -euo pipefail

VERSION=0.3.0
PROGRAMS=(lmplz query build_binary)
ROOT="${LMLAB_ORACLE_DIR:-$HOME/.cache/lmlab/oracles}/kenlm"
BIN="$ROOT/bin"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"  # whose pip downloads the sdist
[[ -x "$PYTHON" ]] || PYTHON=python3

built() {
  for program in "${PROGRAMS[@]}"; do [[ -x "$BIN/$program" ]] || return 1; done
}
built && exit 0

mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
flock 9  # a second caller waits here for the first build, then finds the binaries
built && exit 0

# Boost (program_options, system, thread, test) and a compiler: from apt only where missing.
packages=()
for pair in program_options.hpp:libboost-program-options-dev system/error_code.hpp:libboost-system-dev \
            thread.hpp:libboost-thread-dev test/unit_test.hpp:libboost-test-dev; do
  [[ -e "/usr/include/boost/${pair%%:*}" ]] || packages+=("${pair##*:}")
done
command -v cmake >/dev/null || packages+=(cmake)
command -v g++ >/dev/null || packages+=(g++ make)
if ((${#packages[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "build_kenlm: apt-get install ${packages[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
fi

# Only the kenlm sdist: letting pip build its build dependencies from source too takes 20+ minutes.
SOURCE="$ROOT/kenlm-$VERSION"
if [[ ! -f "$SOURCE/CMakeLists.txt" ]]; then
  "$PYTHON" -m pip download --quiet --no-deps --no-binary kenlm -d "$ROOT/sdist" "kenlm==$VERSION"
  tar xzf "$ROOT/sdist/kenlm-$VERSION.tar.gz" -C "$ROOT"
fi
cmake -S "$SOURCE" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >&2
make -C "$ROOT/build" -j"${JOBS:-2}" "${PROGRAMS[@]}" >&2

# Copy under a temporary name and rename, so an interrupted build never leaves half a binary in bin/.
mkdir -p "$BIN"
for program in "${PROGRAMS[@]}"; do
  cp "$ROOT/build/bin/$program" "$BIN/.$program.tmp"
  mv "$BIN/.$program.tmp" "$BIN/$program"
done
echo "build_kenlm: ${PROGRAMS[*]} in $BIN" >&2
