#!/usr/bin/env bash
# Baseline strength (issue 10 §3): build FuxiCTR 2.3.10's own venv, then train its DNN beside collapse-lab's
# single model on the same ML-100K split and seeds (bench/fuxictr_baseline.py; results in bench/results/).
#
#   bash bench/fuxictr_baseline.sh [args of bench/fuxictr_baseline.py]
#   bash bench/fuxictr_baseline.sh --perf-table [args of bench/perf_table.py]
#
# --perf-table: the speed comparison instead (docs/performance.md §3.1): collapse-lab's KDEF step against the
# EKTF-equivalent (bench/ektf_equivalent.py, the authors' model from FuxiCTR's layers) per N and precision, in
# one process (FuxiCTR's site-packages is appended to collapse-lab's path; both hold the same torch).
#
# FUXICTR_VENV (default bench/.venv-fuxictr, git-ignored) holds fuxictr==2.3.10, polars<2 (FuxiCTR 2.3 imports
# it) and the same torch as collapse-lab; PYTHON (default python3) creates it, and the collapse-lab side runs
# with COLLAPSE_LAB_PYTHON (default: python). Nothing from FuxiCTR enters the repository.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${FUXICTR_VENV:-$here/.venv-fuxictr}"
ours="${COLLAPSE_LAB_PYTHON:-python}"
torch_version="$("$ours" -c 'import torch; print(torch.__version__.split("+")[0])')"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet "torch==$torch_version" "fuxictr==2.3.10" "polars<2"
if [ "${1:-}" = "--perf-table" ]; then
  shift
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  exec "$ours" "$here/perf_table.py" --ektf "$site" "$@"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$ours" "$here/fuxictr_baseline.py" --fuxictr-python "$venv/bin/python" "$@"
