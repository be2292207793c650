#!/bin/sh
# Install a CPU build of torch into the environment of the given pip, before the project itself.
# Where this machine keeps the torch 2.13.0 CPU wheel on disk, `pip install torch==2.13.0` takes it in seconds;
# elsewhere use PyTorch's CPU index so the project's torch>=2.4 never pulls a multi-GB CUDA build.
set -e
PIP="${1:-pip}"
PY="$(dirname "$PIP")/python"
if "$PY" -c "import torch" 2>/dev/null; then
    echo "torch already installed: $("$PY" -c 'import torch; print(torch.__version__)')"
    exit 0
fi
if ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0+cpu-* >/dev/null 2>&1; then
    "$PIP" install --quiet torch==2.13.0
else
    "$PIP" install --quiet torch --index-url https://download.pytorch.org/whl/cpu || "$PIP" install --quiet torch
fi
