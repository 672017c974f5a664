"""otflows.pipeline.compare: metrics and figures compared between two commits of a temp repo."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread, imsave

from otflows.pipeline.compare import Comparison, compare_revisions, run_compare, write_comparison


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _record(experiment: str, **metrics: float) -> dict[str, object]:
    identity = {"method": "otflow", "experiment": experiment, "dataset": "toy", "seed": 0}
    return {**identity, "device": "cpu", "n_parameters": 100, **metrics}


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two commits: mmd2 of otflow/moons changes, nll_nats of otflow/moons is added,
    otflow/circles is unchanged, and results/figures/fig.png exists (different) in both."""
    root = tmp_path_factory.mktemp("repo")
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "test@example.com")
    _git(root, "config", "user.name", "test")
    metrics = root / "results" / "metrics" / "otflow"
    figure = root / "results" / "figures" / "fig.png"
    figure.parent.mkdir(parents=True)

    _write_json(metrics / "moons.json", _record("moons", mmd2=0.2, train_seconds=1.0))
    _write_json(metrics / "circles.json", _record("circles", mmd2=0.5, train_seconds=2.0))
    imsave(figure, np.zeros((20, 30, 3)))
    _commit(root, "first")

    _write_json(metrics / "moons.json", _record("moons", mmd2=0.1, nll_nats=2.5, train_seconds=1.0))
    imsave(figure, np.ones((20, 30, 3)))
    _commit(root, "second")

    # The working tree must never be read: scribble over it after committing.
    _write_json(metrics / "moons.json", _record("moons", mmd2=99.0, train_seconds=1.0))
    return root


def test_table_holds_changed_and_added_metrics(repo: Path) -> None:
    cmp = compare_revisions(repo, "HEAD~1", "HEAD")
    assert isinstance(cmp, Comparison)
    assert list(cmp.table.columns) == [
        "method", "experiment", "metric", "value_a", "value_b", "abs_change", "rel_change",
    ]  # fmt: skip
    rows = cmp.table.set_index(["method", "experiment", "metric"])
    assert sorted(rows.index) == [("otflow", "moons", "mmd2"), ("otflow", "moons", "nll_nats")]

    mmd2 = rows.loc[("otflow", "moons", "mmd2")]
    assert mmd2["value_a"] == 0.2 and mmd2["value_b"] == 0.1  # committed, not the 99.0 on disk
    assert mmd2["abs_change"] == pytest.approx(-0.1)
    assert mmd2["rel_change"] == pytest.approx(-0.5)

    added = rows.loc[("otflow", "moons", "nll_nats")]
    assert math.isnan(added["value_a"]) and added["value_b"] == 2.5
    assert math.isnan(added["rel_change"])

    assert cmp.figures == ["results/figures/fig.png"]
    assert cmp.changed_figures == ["results/figures/fig.png"]
    assert cmp.sha_b == _git(repo, "rev-parse", "HEAD")
    assert len(cmp.sources_a) == len(cmp.sources_b) == 2


def test_write_comparison_files_and_side_by_side_figure(repo: Path, tmp_path: Path) -> None:
    cmp = compare_revisions(repo, "HEAD~1", "HEAD")
    written = write_comparison(cmp, tmp_path / "out")
    out = tmp_path / "out"
    md, csv, fig = out / "comparison.md", out / "comparison.csv", out / "figures" / "fig.png"
    assert written == [md, csv, fig]

    text = md.read_text(encoding="utf-8")
    assert "| otflow | moons | mmd2 | 0.2 | 0.1 | -0.1 | -50.00% |" in text
    assert cmp.short_a in text and cmp.short_b in text
    table = pd.read_csv(csv)
    assert table.shape == (2, 7)

    image = imread(fig)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # two panels side by side


def test_equal_revisions_give_empty_table(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmp = compare_revisions(repo, "HEAD", "HEAD")
    assert cmp.table.empty
    assert cmp.figures == ["results/figures/fig.png"] and cmp.changed_figures == []

    out_dir = repo.parent / "equal"
    assert run_compare("HEAD", "HEAD", repo, out_dir) == 0
    assert "No metric differs" in capsys.readouterr().out
    assert (out_dir / "comparison.md").exists()


def test_run_compare_default_out_dir(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_compare("HEAD~1", "HEAD", repo, None) == 0
    out = capsys.readouterr().out
    assert "| otflow | moons | nll_nats | — | 2.5 | — | — |" in out
    short_a = _git(repo, "rev-parse", "--short", "HEAD~1")
    short_b = _git(repo, "rev-parse", "--short", "HEAD")
    assert (repo / "results" / "compare" / f"{short_a}_{short_b}" / "comparison.csv").exists()


def test_bad_revision_is_named(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="unknown git revision 'no-such-rev'"):
        compare_revisions(repo, "HEAD", "no-such-rev")
    with pytest.raises(ValueError, match="unknown git revision '--all'"):
        compare_revisions(repo, "--all", "HEAD")
    assert run_compare("no-such-rev", "HEAD", repo, None) == 2
    assert "unknown git revision 'no-such-rev'" in capsys.readouterr().err


def test_falls_back_to_summary_json(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "test@example.com")
    _git(tmp_path, "config", "user.name", "test")
    summary = tmp_path / "results" / "metrics" / "summary.json"
    _write_json(summary, {"jko": {"moons": {"mmd2": 0.4}}})
    _commit(tmp_path, "first")
    _write_json(summary, {"jko": {"moons": {"mmd2": 0.3}}})
    _commit(tmp_path, "second")

    cmp = compare_revisions(tmp_path, "HEAD~1", "HEAD")
    assert cmp.sources_a == cmp.sources_b == ["results/metrics/summary.json"]
    keys = cmp.table[["method", "experiment", "metric"]].values.tolist()
    assert keys == [["jko", "moons", "mmd2"]]
    assert cmp.table["rel_change"].iloc[0] == pytest.approx(-0.25)
