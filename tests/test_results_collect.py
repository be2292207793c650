"""results.csv from run directories: per-member rows, per-run quantities, skipped runs, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sweep_fixtures import fake_config, make_fake_sweep, write_fake_run

from collapse_lab.cli import cli, main
from collapse_lab.errors import UserError
from collapse_lab.results import collect_results, variant_name, write_results
from collapse_lab.results.collect import read_results_csv
from collapse_lab.results.tables import read_singular_values


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory):
    return make_fake_sweep(tmp_path_factory.mktemp("fake") / "sweep", seeds=(0, 1))


def test_rows_per_run_and_member_with_hand_checked_summary(tmp_path):
    cfg = fake_config("vanilla", "mean", 3, seed=5)
    write_fake_run(tmp_path / "runs" / "r1", cfg, aucs={"ensemble": 0.80, "0": 0.75, "1": 0.78, "2": 0.70})
    res = collect_results(tmp_path).results
    assert list(res["member"]) == ["ensemble", "0", "1", "2"]
    assert res["test_auc"].tolist() == [0.80, 0.75, 0.78, 0.70]
    row = res.iloc[0]
    assert (row["best_student"], row["worst_student"]) == (1, 2)
    assert row["best_student_auc"] == 0.78 and row["worst_student_auc"] == 0.70
    assert row["spread"] == pytest.approx(0.08) and row["gap"] == pytest.approx(0.02)
    assert res["is_best"].tolist() == [False, False, True, False]
    assert (row["variant"], row["method"], row["fusion"], row["n"], row["seed"]) == ("vanilla-mean", "vanilla",
                                                                                      "mean", 3, 5)
    # the fixture's logloss is 0.55 - 0.5 (auc - 0.78); valid = test in the fixture
    assert res["test_logloss"].tolist() == pytest.approx([0.54, 0.565, 0.55, 0.59])
    assert res["valid_auc"].tolist() == res["test_auc"].tolist()


def test_student_sd_and_the_stored_noise_figure(tmp_path):
    cfg = fake_config("kdef", "mean", 3, seed=5)
    run = write_fake_run(tmp_path / "runs" / "r1", cfg, aucs={"ensemble": 0.80, "0": 0.75, "1": 0.78, "2": 0.70})
    old = collect_results(tmp_path).results.iloc[0]
    assert old["student_auc_sd"] == pytest.approx(np.std([0.75, 0.78, 0.70], ddof=1))
    assert np.isnan(old["student_auc_diff_se"])  # trained before the figure was stored
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["results"]["summary"]["student_auc_diff_se"] = 0.0042
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert collect_results(tmp_path).results.iloc[0]["student_auc_diff_se"] == 0.0042


def test_tables_recomputed_from_a_results_csv_equal_those_from_the_runs(fake_sweep, tmp_path):
    """`collapse-lab results results.csv` (no run directories needed) gives the same tables as from the runs."""
    from_runs = write_results(fake_sweep, out_dir=tmp_path / "a")
    result = CliRunner().invoke(cli, ["results", str(tmp_path / "a" / "results.csv"), "--out", str(tmp_path / "b"),
                                      "--sweep-id", "fake-12345678"])
    assert result.exit_code == 0, result.output
    for name in ("results", "summary", "paired_tests", "claims"):
        a = pd.read_csv(tmp_path / "a" / f"{name}.csv", dtype={"member": str})
        b = pd.read_csv(tmp_path / "b" / f"{name}.csv", dtype={"member": str})
        pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "a" / "results.md").read_text() == (tmp_path / "b" / "results.md").read_text()
    # an older results.csv without the SD column gets it back from the students' rows
    old = from_runs.collected.results.drop(columns=["student_auc_sd", "student_auc_diff_se"])
    old.to_csv(tmp_path / "old.csv", index=False)
    again = read_results_csv(tmp_path / "old.csv").results
    pd.testing.assert_series_equal(again["student_auc_sd"], from_runs.collected.results["student_auc_sd"])
    assert list(again.columns) == list(from_runs.collected.results.columns)


def test_a_file_that_is_not_a_results_table_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "results.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit) as exc:
        main(["results", str(bad)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: not a results.csv of `collapse-lab results` (no column run, ")
    assert err.count("\n") == 1


def test_spectral_columns_come_from_spectrum_csv(tmp_path):
    cfg = fake_config("kdef", "mean", 2, seed=1)
    run = write_fake_run(tmp_path / "runs" / "r", cfg, aucs={"ensemble": 0.8, "0": 0.79, "1": 0.795})
    res = collect_results(tmp_path).results
    spec = pd.read_csv(run / "spectrum.csv", dtype={"member": str})
    ka = spec[(spec["metric"] == "knowledge_abundance")].set_index("name")["value"]
    student1 = res[res["member"] == "1"].iloc[0]
    for j in (1, 2, 3):
        assert student1[f"ka_layer{j}"] == ka[f"students.1.layers.{j - 1}.linear.weight"]
        assert res.iloc[0][f"best_ka_layer{j}"] == ka[f"students.1.layers.{j - 1}.linear.weight"]  # best = 1
    assert np.isnan(res.iloc[0]["ka_layer1"])  # the ensemble row has no own KA
    emb = spec[(spec["target"] == "embeddings")]
    ia = emb[emb["metric"] == "information_abundance"]
    assert res.iloc[0]["emb_ia_mean"] == pytest.approx(ia["value"].mean())
    assert res.iloc[0]["emb_ia_ratio_mean"] == pytest.approx((ia["value"] / ia["baseline"]).mean())
    assert res.iloc[0]["emb_erank_mean"] == pytest.approx(emb[emb["metric"] == "effective_rank"]["value"].mean())
    # lambda/mu statistics of the last epoch, from the manifest summary
    summary = json.loads((run / "manifest.json").read_text())["results"]["summary"]
    assert res.iloc[0]["lambda_std"] == summary["lambda_std"] and res.iloc[0]["mu_mean"] == 1.0
    # the KA stored in spectrum.csv agrees with the stored singular values (tau = 4)
    sigma = read_singular_values(run)["weights:students.1.layers.0.linear.weight"]
    assert student1["ka_layer1"] == pytest.approx(np.mean(sigma > 4.0))


def test_missing_files_are_reported_and_skipped(tmp_path):
    write_fake_run(tmp_path / "runs" / "good", fake_config("vanilla", "mean", 2))
    write_fake_run(tmp_path / "runs" / "nospec", fake_config("kd", "mean", 2), spectra=False)
    write_fake_run(tmp_path / "runs" / "failed", fake_config("dml", "mean", 2), status="failed")
    (tmp_path / "runs" / "empty").mkdir()
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "manifest.json").write_text("{")
    out = collect_results(tmp_path)
    assert sorted(out.results["run"].unique()) == ["good", "nospec"]
    reasons = dict(out.skipped)
    assert reasons["empty"] == "no manifest.json"
    assert reasons["failed"] == "status 'failed' (not complete)"
    assert reasons["broken"].startswith("manifest.json unreadable")
    assert out.notes == [f"nospec: no spectrum.csv (run `collapse-lab spectrum {tmp_path / 'runs' / 'nospec'}`)"]
    assert out.results.loc[out.results["run"] == "nospec", "best_ka_layer1"].isna().all()


def test_no_finished_runs_is_a_user_error(tmp_path):
    write_fake_run(tmp_path / "runs" / "failed", fake_config(), status="running")
    with pytest.raises(UserError, match=r"no finished runs \(failed: status 'running' \(not complete\)\)"):
        collect_results(tmp_path)
    with pytest.raises(UserError, match="not a directory"):
        collect_results(tmp_path / "nope")


def test_varying_config_keys_get_their_own_columns(tmp_path):
    for lr in (0.001, 0.01):
        write_fake_run(tmp_path / "runs" / f"lr{lr}", fake_config("kd", "mean", 2, lr=lr))
    res = collect_results(tmp_path).results
    assert sorted(res["cfg_lr"].unique()) == [0.001, 0.01]
    assert "cfg_hidden_units" not in res  # constant keys stay out


def test_variant_names():
    assert [variant_name(m, f) for m, f in [("vanilla", "mean"), ("vanilla", "concat"), ("dml", "mean"),
                                            ("kdef", "sum")]] == ["vanilla-mean", "vanilla-concat", "dml", "kdef-sum"]


def test_write_results_files_and_sweep_id(fake_sweep, tmp_path):
    report = write_results(fake_sweep, out_dir=tmp_path)
    assert set(report.paths) == {"results", "summary", "paired_tests", "claims", "markdown"}
    res = pd.read_csv(tmp_path / "results.csv", dtype={"member": str})
    # 9 settings (vanilla-mean N=1,2,4 and kd/dml/kdef N=2,4) x 2 seeds; 1 + N rows per run
    runs = res[res["member"] == "ensemble"]
    assert len(runs) == 18 and len(res) == 2 * ((2 + 3 + 5) + 3 * (3 + 5))
    assert report.collected.sweep_id == "fake-12345678"
    assert report.to_json()["runs"] == 18
    # scale-free per-layer columns: the best student's value is its member row's value (ratio to a Gaussian)
    best_rows = res[res["is_best"]]
    for measure in ("ka", "erank_ratio", "ia_ratio"):
        assert np.allclose(best_rows[f"{measure}_layer1"], best_rows[f"best_{measure}_layer1"])
    students = res[res["member"] != "ensemble"]
    assert students["erank_ratio_layer1"].between(0.2, 2.0).all()  # every student row has it, and plausible


def test_results_markdown_quotes_the_csv_numbers(fake_sweep, tmp_path):
    """results.md carries the same means, interval half-widths and paired differences as the CSV files."""
    write_results(fake_sweep, out_dir=tmp_path)
    text = (tmp_path / "results.md").read_text()
    summary = pd.read_csv(tmp_path / "summary.csv")
    row = summary.query("metric == 'ensemble_auc' and variant == 'kd' and n == 4").iloc[0]
    lines = text.split("## Ensemble test AUC")[1].split("##")[0].strip().splitlines()
    assert lines[0] == "| dataset | variant | N=1 | N=2 | N=4 |"
    kd = next(line for line in lines if "| kd |" in line)
    assert kd.endswith(f"| {row['mean']:.4f} ± {row['ci_half']:.4f} (n=2) |")
    assert [line.split(" | ")[1] for line in lines[2:]] == ["vanilla-mean", "kd", "dml", "kdef"]
    paired = pd.read_csv(tmp_path / "paired_tests.csv")
    p = paired.query("metric == 'ensemble_auc' and variant == 'kdef' and baseline == 'kd' and n == 2").iloc[0]
    assert (f"| synthetic | 2 | kdef − kd | 2 | {100 * p['mean_diff']:+.2f} [{100 * p['ci_low']:+.2f}, "
            f"{100 * p['ci_high']:+.2f}] |") in text
    assert ("## Claims C1–C9 (docs/method.md §14; C9: embedding collapse)\n\ndataset = synthetic:\n\n"
            "| claim | quantity |") in text
    # the single model has no student SD: no N=1 cell at all, not "nan (n=0)"
    sd = text.split("## Standard deviation of the student test AUCs within a run")[1].split("##")[0]
    assert "| dataset | variant | N=2 | N=4 |" in sd and "nan" not in sd


def test_cli_results_prints_tables_and_writes_files(fake_sweep):
    result = CliRunner().invoke(cli, ["results", str(fake_sweep)])
    assert result.exit_code == 0, result.output
    assert "ensemble_auc (test; mean ± 95% CI half-width over seeds, n = runs)" in result.output
    assert "N=1" in result.output and "N=4" in result.output and "(n=2)" in result.output
    for name in ("results.csv", "summary.csv", "paired_tests.csv", "claims.csv", "results.md"):
        assert (fake_sweep / name).is_file()
    as_json = CliRunner().invoke(cli, ["results", str(fake_sweep), "--json"])
    data = json.loads(as_json.output)
    assert data["sweep_id"] == "fake-12345678" and data["skipped"] == []
    assert {r["metric"] for r in data["summary"]} >= {"ensemble_auc", "gap", "best_ka_layer1"}
    assert {r["claim"] for r in data["claims"]} == {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"}
    with_claims = CliRunner().invoke(cli, ["results", str(fake_sweep), "--claims"])
    assert "claims (docs/method.md §14) on synthetic:\n| claim | quantity |" in with_claims.output


def test_cli_results_bad_confidence(fake_sweep, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["results", str(fake_sweep), "--confidence", "95"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == "error: --confidence must be between 0 and 1 (e.g. 0.95), got 95.0\n"


def test_cli_results_without_runs_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["results", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path}: no finished runs\n"


def test_markdown_keeps_settings_apart_and_states_the_confidence_level():
    from collapse_lab.results.markdown import paired_markdown
    from collapse_lab.results.writer import claims_markdown

    row = {"dataset": "d", "n": 2, "metric": "ensemble_auc", "variant": "kdef", "baseline": "vanilla-mean",
           "pairs": 3, "mean_diff": 0.01, "ci_low": 0.005, "ci_high": 0.015, "p_ttest": 0.01, "p_ttest_bh": 0.02,
           "p_wilcoxon": np.nan, "p_wilcoxon_bh": np.nan}
    paired = pd.DataFrame([{**row, "cfg_lr": 0.01}, {**row, "cfg_lr": 0.001, "mean_diff": 0.02}])
    text = paired_markdown(paired, confidence=0.9)
    assert text.splitlines()[0] == ("| dataset | lr | N | comparison | pairs | mean difference (AUC points) [90% CI] "
                                    "| p (paired t) | p (paired t, BH) | p (Wilcoxon) | p (Wilcoxon, BH) |")
    assert "| d | 0.001 | 2 | kdef − vanilla-mean | 3 | +2.00 [+0.50, +1.50] | 0.01 | 0.02 |  |  |" in text
    claims = pd.DataFrame([{"claim": "C1", "statement": "s", "quantity": "q", "unit": "AUC points",
                            "estimate": 0.1, "ci_low": 0.0, "ci_high": 0.2, "runs": "3", "rule": "< 0.1",
                            "verdict": "inconclusive"}])
    assert claims_markdown(claims, 0.9).startswith("| claim | quantity | estimate [90% CI] |")  # no setting keys


def test_results_md_reads_the_controls_against_kdef_and_the_capacity_model_against_kdef():
    from collapse_lab.results.markdown import paired_markdown

    base = {"dataset": "d", "n": 4, "metric": "ensemble_auc", "pairs": 3, "ci_low": -0.01, "ci_high": 0.01,
            "p_ttest": 0.5, "p_ttest_bh": 0.6, "p_wilcoxon": np.nan, "p_wilcoxon_bh": np.nan}
    pairs = [("kdef-kd-only", "kdef", -0.001), ("kdef-kd-only", "vanilla-mean", 0.01),
             ("kdef", "vanilla-mean-capacity", 0.012), ("kdef-uniform", "kdef", 0.0005), ("kdef", "kd", 0.002)]
    paired = pd.DataFrame([{**base, "variant": v, "baseline": b, "mean_diff": d} for v, b, d in pairs])
    comparisons = [line.split(" | ")[2] for line in paired_markdown(paired).splitlines()[2:]]
    assert comparisons == ["kdef-kd-only − kdef", "kdef − vanilla-mean-capacity", "kdef-uniform − kdef",
                           "kdef − kd"]
