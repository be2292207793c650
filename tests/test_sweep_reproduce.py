"""The whole job (`collapse-lab reproduce`) on a real tiny sweep, resumption of spectra, and the presets."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sweep_fixtures import build_tiny_sweep

from collapse_lab.cli import main
from collapse_lab.errors import UserError
from collapse_lab.plotting.figures import FIGURES
from collapse_lab.sweep.grid import expand_grid, load_grid, parse_grid_overrides
from collapse_lab.sweep.reproduce import analyze_sweep, preset_names, resolve_preset
from collapse_lab.sweep.runner import run_sweep


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sweep(tmp_path_factory.getbasetemp() / "tiny-sweep")


def test_reproduce_runs_every_step(tiny):
    assert tiny["exit_code"] == 0, (tiny["output"], tiny["exception"])
    out = tiny["output"]
    assert "prepared: synthetic" in out
    assert "6 runs, 6 trained, 0 already complete, 0 failed" in out
    assert "spectra: 6 analysed, 0 already, 0 failed" in out
    # the tiny runs' weights stay below τ = 4: figs 5-6 (KA) would be blank and are skipped as such
    skipped = json.loads((tiny["figures"] / "figures.json").read_text())["skipped"]
    # figs 14-15 (the paper's Tables V/VI) need the table5/table6 recipes, fig 16 KDEF's controls
    assert set(skipped) <= {"fig5_sv_heatmaps", "fig6_knowledge_abundance", "fig14_table5", "fig15_table6",
                            "fig16_controls"}
    assert all(why.startswith("all zero") or stem.startswith(("fig14", "fig15", "fig16"))
               for stem, why in skipped.items())
    drawn = [f.stem for f in FIGURES if f.stem not in skipped]
    assert f"figures: {len(drawn)} ->" in out and "time (s): data" in out
    sweep = tiny["sweep"]
    state = json.loads((sweep / "sweep.json").read_text())
    assert {r["status"] for r in state["runs"]} == {"complete"} and len(state["runs"]) == 6
    res = pd.read_csv(sweep / "results.csv", dtype={"member": str})
    runs = res[res["member"] == "ensemble"]
    assert sorted(runs["variant"].unique()) == ["kdef", "vanilla-mean"] and len(runs) == 6
    assert runs["best_ka_layer1"].notna().all() and runs["emb_ia_mean"].notna().all()
    # trained models beat chance on the planted data and report lambda/mu only for KDEF
    assert (runs["ensemble_auc"] > 0.55).all()
    assert runs.loc[runs["method"] == "kdef", "lambda_mean"].tolist() == pytest.approx([0.5, 0.5])
    assert runs.loc[runs["method"] == "vanilla", "lambda_mean"].isna().all()
    names = {p.name for p in tiny["figures"].iterdir()}
    assert {f"{stem}.{ext}" for stem in drawn for ext in ("png", "pdf")} <= names


def test_resume_skips_finished_runs_and_spectra(tiny):
    again = run_sweep(tiny["grid"], out_dir=tiny["sweep"], progress=False)
    assert len(again.skipped) == 6 and not again.completed
    spectra = analyze_sweep(tiny["sweep"], progress=False)
    assert len(spectra.already) == 6 and not spectra.analysed and not spectra.failed


def test_presets_expand_as_documented():
    assert {"quick", "ml100k", "criteo"} <= set(preset_names())
    quick = expand_grid(load_grid(resolve_preset("quick")))
    assert len(quick) == 9
    assert {(p.config["method"], p.config["n"]) for p in quick} == {
        ("vanilla", 1), *((m, n) for m in ("vanilla", "kd", "dml", "kdef") for n in (2, 4))}
    assert all(p.config["dataset"] == "movielens-100k" and p.config["hidden_units"] == [128, 128, 128]
               for p in quick)
    ml100k = expand_grid(load_grid(resolve_preset("ml100k")))
    # vanilla-mean: 4 N x 3 seeds; the 5 other recipes: 3 N (no N = 1) x 3 seeds; 3 KDEF ablations at
    # N = 2, 4; the capacity control at K = 2, 4, 10 (one student each)
    assert len(ml100k) == 12 + 5 * 9 + 3 * 2 * 3 + 3 * 3
    capacity = [p.config for p in ml100k if p.config["width_match_n"] is not None]
    assert {(c["n"], c["method"], c["width_match_n"]) for c in capacity} == {(1, "vanilla", k)
                                                                             for k in (2, 4, 10)}
    assert {p.config["seed"] for p in ml100k} == {2024, 2025, 2026}
    assert all(p.config["hidden_units"] == [400, 400, 400] for p in ml100k)
    # the larger grid the preset's header names: 5 seeds x N in {1, 2, 3, 4, 6, 10}, ablations still at N = 2, 4
    larger = expand_grid(load_grid(resolve_preset("ml100k")),
                         parse_grid_overrides(["seed=2024,2025,2026,2027,2028", "n=1,2,3,4,6,10"]))
    assert len(larger) == 30 + 5 * 25 + 3 * 2 * 5 + 3 * 5
    assert {p.name for p in ml100k} <= {p.name for p in larger}


@pytest.mark.parametrize("name", ["criteo", "ml1m", "kdd12", "ipinyou", "kkbox"])
def test_paper_dataset_presets_are_valid(name):
    points = expand_grid(load_grid(resolve_preset(name)))
    assert points and {p.config["n"] for p in points} >= {1, 2, 10}


def test_unknown_preset(capsys):
    with pytest.raises(UserError, match=r"unknown preset 'nope'; valid: .*quick"):
        resolve_preset("nope")
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--preset", "nope"])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: unknown preset 'nope'; valid:")


def test_reproduce_when_every_run_fails(tmp_path, capsys):
    import shutil

    from collapse_lab.data.synthetic import make_synthetic

    data = make_synthetic(tmp_path / "broken", rows=300, fields=2, vocab_size=5)
    shutil.rmtree(data / "test")  # the dataset resolves, but training cannot read its test split
    grid = tmp_path / "g.yaml"
    grid.write_text(f"name: broken\nbase: {{dataset: {data}, hidden_units: [4]}}\ngrid: {{n: [1, 2]}}\n")
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--preset", str(grid), "--out", str(tmp_path / "sw")])
    assert exc.value.code == 2
    # off a terminal every finished (here: failed) run is logged on its own line first; the error is one line
    *log, err = capsys.readouterr().err.splitlines()
    assert len(log) == 2 and all(" failed: UserError: " in line for line in log)
    assert err.startswith(f"error: {tmp_path / 'sw'}: no run finished; 2 failed, the first (kdef-mean-n1-s2024-")
    assert "every error is in" in err
    state = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["status"] for r in state["runs"]] == ["failed", "failed"] and all(r["error"] for r in state["runs"])
