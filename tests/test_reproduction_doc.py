"""REPRODUCTION.md agrees with the committed results of its sweeps (figures/ml100k/, figures/ml100k_learned/,
figures/table5/).

The report quotes table rows of each sweep's ``results.md`` (written by ``collapse-lab results``) verbatim: every
summary row (``| movielens-100k | <recipe> | ...``) and every claim row (``| C<k> | ...``) of a part of the report
must be a row of that part's results.md — the text up to the heading ``## The learned regime`` reads
``figures/ml100k``, the text from it on ``figures/ml100k_learned`` — and each results.md must agree with the
summary.csv and claims.csv next to it. The part from ``## Table V`` on quotes rows of ``figures/table5/table5.md``,
which must equal the table recomputed from the ``results.csv`` beside it. So a number typed by hand, or a report
left behind when a sweep is recomputed, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from collapse_lab.results.markdown import format_value

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "REPRODUCTION.md"
TABLES = ROOT / "figures" / "ml100k"
LEARNED = ROOT / "figures" / "ml100k_learned"
LEARNED_HEADING = "## The learned regime"
TABLE5 = ROOT / "figures" / "table5"
TABLE5_HEADING = "## Table V "
TABLE6 = ROOT / "figures" / "table6"
TABLE6_HEADING = "## Table VI "
pytestmark = pytest.mark.skipif(not (TABLES / "results.md").is_file(),
                                reason="figures/ml100k/results.md is not committed yet")


def _parts() -> list:
    """``(tables folder, the part of REPRODUCTION.md that quotes it)``."""
    doc = DOC.read_text()
    head, _, rest = doc.partition(LEARNED_HEADING)
    learned, _, rest = rest.partition(TABLE5_HEADING)
    table5, _, table6 = rest.partition(TABLE6_HEADING)
    return [(TABLES, head), (LEARNED, learned), (TABLE5, table5), (TABLE6, table6)]


def _rows(text: str, pattern: str) -> list:
    return [line.rstrip() for line in text.splitlines() if re.match(pattern, line)]


@pytest.mark.parametrize("part", [0, 1], ids=["ml100k", "ml100k_learned"])
def test_the_report_quotes_results_md_rows_verbatim(part):
    tables, doc = _parts()[part]
    results = (tables / "results.md").read_text()
    summary_rows = _rows(doc, r"\| movielens-100k \| ")
    claim_rows = _rows(doc, r"\| C\d+ \| ")
    assert summary_rows and claim_rows, f"REPRODUCTION.md should quote the summary and the claims of {tables.name}"
    result_rows = set(results.splitlines())
    missing = [row for row in summary_rows + claim_rows if row not in result_rows]
    assert not missing, f"rows of REPRODUCTION.md not in figures/{tables.name}/results.md: {missing[:3]}"
    header = re.search(r"^# Results of sweep `([^`]+)`", results, re.M)
    runs = re.search(r"^(\d+) finished runs", results, re.M)
    assert header and header.group(1) in doc, "REPRODUCTION.md should name the sweep its numbers come from"
    assert runs and f"{runs.group(1)} finished runs" in doc, "REPRODUCTION.md should say how many runs it reads"


@pytest.mark.parametrize("tables", [TABLES, LEARNED], ids=["ml100k", "ml100k_learned"])
def test_results_md_agrees_with_the_csv_tables_beside_it(tables):
    results = (tables / "results.md").read_text()
    summary = pd.read_csv(tables / "summary.csv")
    auc = summary[summary["metric"] == "ensemble_auc"]
    section = results.split("## Ensemble test AUC")[1].split("\n## ")[0]
    for r in auc.itertuples(index=False):
        cell = format_value(r.mean, r.ci_low, r.ci_high) + f" (n={r.runs})"
        row = next(line for line in section.splitlines() if line.startswith(f"| {r.dataset} | {r.variant} |"))
        assert cell in row, (r.variant, r.n, cell)
    claims = pd.read_csv(tables / "claims.csv")
    for r in claims.itertuples(index=False):
        assert f"| {r.claim} | {r.quantity} ({r.unit}) | {r.estimate:.3f}" in results
    runs = pd.read_csv(tables / "results.csv", usecols=["run", "member"])
    assert f"{int((runs['member'] == 'ensemble').sum())} finished runs" in results


def test_paired_rows_carry_the_bh_adjusted_p_values_of_paired_tests_csv():
    """The paired table of results.md (quoted by the report) shows BH-adjusted p-values, equal to the CSV's."""
    results = (TABLES / "results.md").read_text()
    header = ("| dataset | N | comparison | pairs | mean difference (AUC points) [95% CI] | p (paired t) "
              "| p (paired t, BH) |")
    assert header in results and header in DOC.read_text()
    paired = pd.read_csv(TABLES / "paired_tests.csv").query("metric == 'ensemble_auc'")
    rows = _rows(results, r"\| movielens-100k \| \d+ \| ")
    assert rows
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        variant, baseline = cells[2].split(" − ")
        r = paired[(paired["n"] == int(cells[1])) & (paired["variant"] == variant)
                   & (paired["baseline"] == baseline)].iloc[0]
        assert cells[5:7] == [f"{r['p_ttest']:.3g}", f"{r['p_ttest_bh']:.3g}"], row


@pytest.mark.parametrize("part", [2, 3], ids=["table5", "table6"])
def test_paper_table_rows_are_quoted_from_their_md_which_recomputes_from_results_csv(part):
    from collapse_lab.results.paper_tables import PAPER_TABLES, paper_tables_for

    tables, doc = _parts()[part]
    stem = tables.name
    if not (tables / f"{stem}.md").is_file():
        pytest.skip(f"figures/{stem} is not committed yet")
    table = (tables / f"{stem}.md").read_text()
    labels = {r.label for r in PAPER_TABLES[stem][1]}
    results = pd.read_csv(tables / "results.csv")
    present = [line for line in table.splitlines() if line.startswith("| ") and line.split("|")[1].strip() in labels]
    quoted = [line.rstrip() for line in doc.splitlines()
              if line.startswith("| ") and line.split("|")[1].strip() in labels]
    assert quoted and len(quoted) == len(present), f"REPRODUCTION.md should quote every row of {stem}.md"
    missing = [row for row in quoted if row not in set(table.splitlines())]
    assert not missing, f"rows of REPRODUCTION.md not in figures/{stem}/{stem}.md: {missing[:3]}"
    assert paper_tables_for(results)[stem][0] == table
    runs = int((results["member"] == "ensemble").sum())
    assert f"{runs} finished runs" in doc and stem in doc
