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
