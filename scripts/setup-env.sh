#!/usr/bin/env bash
# Create (or reuse) ./.venv and install videosynth into it.
#   scripts/setup-env.sh            # runtime dependencies
#   scripts/setup-env.sh test       # plus the test extras
# torch is installed first, on its own, so pip does not pull a multi-GB CUDA build when a CPU
# build is what this machine has (override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.5.1").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${1:-}"

# The browser tests of the web app drive Debian's Chromium through its driver: install both where
# missing (as root, e.g. on CI); elsewhere say how, and those tests are skipped.
if [ "$EXTRAS" = "test" ] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "installing chromium and chromium-driver (browser tests)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "note: no chromium/chromedriver: the browser tests will be skipped" \
             "(sudo apt-get install chromium chromium-driver)" >&2
    fi
fi

# The real-footage tests read the sample videos of Debian's opencv-doc (96 MB download, about 25 s
# to install): install it where missing (as root, e.g. on CI); elsewhere those tests are skipped.
OPENCV_SAMPLES=/usr/share/doc/opencv-doc/examples/data
if [ "$EXTRAS" = "test" ] && [ ! -d "$OPENCV_SAMPLES" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "installing opencv-doc (real sample videos for the tests)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null; } ||
            echo "note: opencv-doc did not install: the real-footage tests will be skipped" >&2
    else
        echo "note: no $OPENCV_SAMPLES: the real-footage tests will be skipped (sudo apt-get install opencv-doc)" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.videosynth-installed${EXTRAS:+-$EXTRAS}"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && "$PY" -c "import videosynth, torch, av" 2>/dev/null; then
    exit 0
fi
"$PY" -m pip install --quiet --upgrade pip
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "installing $TORCH_SPEC"
    "$PY" -m pip install --quiet "$TORCH_SPEC"
fi
spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
echo "installing videosynth${EXTRAS:+[$EXTRAS]}"
"$PY" -m pip install --quiet -e "$spec"
touch "$stamp"
