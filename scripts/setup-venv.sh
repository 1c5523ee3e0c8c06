#!/usr/bin/env bash
# Create .venv (if missing) and install retain into it with the extras named in $1
# (default "dev"). Installs the CPU build of PyTorch when no torch is importable, so that
# a bare `torch` requirement never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# pip's configured local indexes that this machine lacks: noise, not a problem
IGNORED="is ignored: it is neither a file nor a directory"

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing the CPU build of torch 2.13.0"
  if compgen -G "/opt/wheels/torch-2.13.0*" >/dev/null; then
    "${PIP[@]}" install torch==2.13.0 --find-links /opt/wheels 2> >(grep -v "$IGNORED" >&2)
  else
    "${PIP[@]}" install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu 2> >(grep -v "$IGNORED" >&2)
  fi
fi

stamp="$VENV/.retain-installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${EXTRAS//,/-}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing retain[$EXTRAS] (editable)"
  "${PIP[@]}" install -e ".[$EXTRAS]" 2> >(grep -v "$IGNORED" >&2)
  touch "$stamp"
fi
