"""Property-based tests of every checkpoint and matrix loader (issue 12): ``.npy``, ``.npz``, ``.pt``,
``.safetensors``, ``trainer_state.pt`` and run directories, valid or damaged (truncated, bytes flipped or
inserted, random), never raise anything but a one-line ``error:`` naming the file (exit code 2) and leave
nothing behind; the ones that load give finite spectra."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzz_helpers import FUZZ, assert_clean_failure, leftover_temp_files, mutated, run_cli
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save as save_numpy
from spectral_fixtures import make_run

from collapse_lab.errors import UserError
from collapse_lab.io.checkpoint import load_weights

DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "uint8", "bool", "complex64"])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    elements = None
    if dtype.kind in "fc":
        width = 64 if dtype in (np.float64, np.complex64) else dtype.itemsize * 8
        elements = st.floats(allow_nan=True, allow_infinity=True, width=min(width, 32))
        if dtype == np.float64:
            elements = elements | st.sampled_from([1e200, -1e250, 1e-300, 5e-324])
    return draw(hnp.arrays(dtype, draw(SHAPES), elements=elements))


def _spectrum_of(tmp: Path, path: Path) -> None:
    """``collapse-lab spectrum PATH --out OUT``: success writes both files, failure one line and nothing."""
    out = tmp / "out"
    code, stdout, err = run_cli(["spectrum", str(path), "--out", str(out)])
    if code == 0:
        assert (out / "spectrum.csv").is_file() and (out / "singular_values.npz").is_file()
        with np.load(out / "singular_values.npz", allow_pickle=False) as npz:
            assert all(np.isfinite(npz[k]).all() and (npz[k] >= 0).all() for k in npz.files)
    else:
        assert_clean_failure(code, err, [path])
        assert not out.exists()
    assert not leftover_temp_files(tmp)


def _bytes_of(save, obj) -> bytes:
    buf = io.BytesIO()
    save(obj, buf)
    return buf.getvalue()


@FUZZ
@given(array=arrays(), data=st.data())
def test_npy_files(array, data):
    blob = data.draw(mutated(_bytes_of(lambda a, f: np.save(f, a, allow_pickle=False), array)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "matrix.npy"
        path.write_bytes(blob)
        _spectrum_of(Path(d), path)


TENSOR_NAMES = st.sampled_from(["w", "students.0.layers.0.linear.weight", "embedding.tables.f.weight", "input",
                                "model.w", "state_dict", "module.x", ""])


@st.composite
def state_dicts(draw: st.DrawFn) -> dict:
    names = draw(st.lists(TENSOR_NAMES, min_size=1, max_size=3, unique=True))
    out = {}
    for name in names:
        a = draw(arrays())
        out[name] = torch.from_numpy(np.ascontiguousarray(a))
    if draw(st.booleans()):  # nested, with plain values next to the tensors
        out = {"state_dict": out, "epoch": draw(st.integers(-5, 5)), "note": draw(st.text(max_size=5))}
    return out


@FUZZ
@given(sd=state_dicts(), data=st.data())
def test_torch_checkpoints(sd, data):
    blob = data.draw(mutated(_bytes_of(torch.save, sd)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / data.draw(st.sampled_from(["model.pt", "weights.bin", "x.pth", "fuxi.model"]))
        path.write_bytes(blob)
        _spectrum_of(Path(d), path)


@FUZZ
@given(data=st.data())
def test_safetensors_files(data):
    names = data.draw(st.lists(TENSOR_NAMES.filter(bool), min_size=1, max_size=3, unique=True))
    tensors = {n: np.ascontiguousarray(data.draw(arrays().filter(lambda a: a.dtype != np.complex64)))
               for n in names}
    blob = data.draw(mutated(save_numpy(tensors)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.safetensors"
        path.write_bytes(blob)
        _spectrum_of(Path(d), path)
        try:  # the trainer's own loader (best/last weights)
            loaded, _ = load_weights(path)
        except UserError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            assert all(isinstance(t, torch.Tensor) for t in loaded.values())


@FUZZ
@given(data=st.data())
def test_singular_value_archives(data):
    from collapse_lab.results.tables import read_singular_values
    from collapse_lab.spectral.analysis import load_singular_values

    arrays_ = {f"weights:{i}": data.draw(arrays()) for i in range(data.draw(st.integers(0, 3)))}
    blob = data.draw(mutated(_bytes_of(lambda obj, f: np.savez(f, **obj), arrays_)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "spectrum" / "singular_values.npz"
        path.parent.mkdir()
        path.write_bytes(blob)
        (path.parent / "spectrum.csv").write_text("metric,value\n")
        for load in (lambda: load_singular_values(path.parent), lambda: read_singular_values(Path(d))):
            try:
                loaded = load()
            except UserError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
            else:
                assert all(isinstance(v, np.ndarray) for v in loaded.values())


@FUZZ
@given(state=st.recursive(st.none() | st.integers() | st.floats() | st.text(max_size=4)
                          | st.builds(torch.zeros, st.integers(0, 3)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                      max_size=3), max_leaves=6),
       data=st.data())
def test_trainer_state_files(state, data):
    from collapse_lab.io.checkpoint import load_trainer_state

    blob = data.draw(mutated(_bytes_of(torch.save, state)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trainer_state.pt"
        path.write_bytes(blob)
        try:
            loaded = load_trainer_state(path)
        except UserError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc) and "weights_only=False" not in str(exc)
        else:
            assert isinstance(loaded, dict)


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fuzzrun"))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=3), max_leaves=8)


@FUZZ
@given(data=st.data())
def test_run_directories(run_template, data):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "copy"
        shutil.copytree(run_template.parent, root, symlinks=True)
        run = root / run_template.name
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["dataset"]["path"] = str(root / "data" / "tiny")
        what = data.draw(st.sampled_from(["manifest-value", "manifest-bytes", "checkpoint", "probe", "counts"]))
        if what == "manifest-value":  # replace one value somewhere in the manifest by random JSON
            node, key = manifest, None
            while True:
                keys = list(node) if isinstance(node, dict) else list(range(len(node)))
                if not keys:
                    break
                key = data.draw(st.sampled_from(keys))
                if not isinstance(node[key], (dict, list)) or data.draw(st.booleans()):
                    break
                node = node[key]
            if key is not None:
                node[key] = data.draw(JSON)
        text = json.dumps(manifest)
        if what == "manifest-bytes":
            (run / "manifest.json").write_bytes(data.draw(mutated(text.encode())))
        else:
            (run / "manifest.json").write_text(text)
        target = {"checkpoint": run / "checkpoints" / "best" / "model.safetensors", "probe": run / "probe.safetensors",
                  "counts": next((root / "data" / "tiny" / "counts").glob("*.npy"))}.get(what)
        if target is not None and target.exists():
            target.write_bytes(data.draw(mutated(target.read_bytes())))
        out = Path(d) / "out"
        code, _, err = run_cli(["spectrum", str(run), "--out", str(out), "--weighting",
                                data.draw(st.sampled_from(["uniform", "frequency", "trained"]))])
        if code == 0:
            assert (out / "spectrum.csv").is_file()
        else:
            assert_clean_failure(code, err, [run, root])
            assert not out.exists()
        assert not leftover_temp_files(Path(d))
