"""JKO-Flow Fig. 5 from the per-iteration samples (``iterate_samples`` ``[K, n, d]``): the
toy figure ``jko-iterations`` and the MINIBOONE figure draw one MMD² per JKO iteration, and a
samples file without iterates is an error naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from otflows import reports
from otflows.metrics.mmd import mmd2_unbiased
from otflows.reports.jko import iterate_mmd2

K = 3


def _samples_file(path: Path, d: int, seed: int, iterates: bool = True) -> Path:
    """A JKO samples file: test ``[200, d]``, iterates drifting towards it, samples the last."""
    rng = np.random.default_rng(seed)
    test = rng.normal(size=(200, d))
    its = np.stack([rng.normal(size=(150, d)) * (1 + 1.0 / k) + 2.0 / k
                    for k in range(1, K + 1)])
    arrays = {"test": test, "samples": its[-1]}
    if iterates:
        arrays["iterate_samples"] = its
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_iterate_mmd2_is_the_tables_mmd2_of_each_iterate(tmp_path):
    path = _samples_file(tmp_path / "jko/alpha-moons-a5.npz", 2, 0)
    run = dict(np.load(path))
    vals = iterate_mmd2(path, run)
    assert vals.shape == (K,)
    assert vals[-1] == mmd2_unbiased(run["samples"], run["test"], 1.0)
    assert vals[0] > vals[-1]  # the iterates approach the test split


def test_jko_iterations_draws_one_line_per_dataset(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    inputs = [_samples_file(tmp_path / f"jko/alpha-{name}-a5.npz", 2, i)
              for i, name in enumerate(("8gaussians", "moons"))]
    drawn = {}
    close = plt.close

    def keep(fig):
        drawn["fig"] = fig
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    out = tmp_path / "fig/jko_iterations.png"
    out.parent.mkdir()
    reports.figure("jko-iterations")(inputs, out)
    assert out.stat().st_size > 1000 and out.with_suffix(".svg").exists()
    (ax,) = drawn["fig"].axes
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["8gaussians", "moons"]
    assert list(ax.get_lines()[0].get_xdata()) == list(range(1, K + 1))
    assert list(ax.get_xticks()) == list(range(1, K + 1))
    assert "iteration" in ax.get_xlabel() and "MMD²" in ax.get_ylabel()


@pytest.mark.parametrize("kind", ["jko-iterations", "miniboone-iterations"])
def test_a_file_without_iterates_is_an_error_naming_it(tmp_path, kind):
    d = 30 if kind == "miniboone-iterations" else 2
    good = _samples_file(tmp_path / "jko/miniboone-a1.npz", d, 0)
    bad = _samples_file(tmp_path / "jko/miniboone-a5.npz", d, 1, iterates=False)
    with pytest.raises(ValueError, match=r"miniboone-a5\.npz holds no iterate_samples"):
        reports.figure(kind)([good, bad], tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_miniboone_iterations_draws_both_slices(tmp_path):
    inputs = [_samples_file(tmp_path / f"jko/miniboone-a{a}.npz", 30, i)
              for i, a in enumerate((1, 5))]
    out = tmp_path / "f5.png"
    reports.figure("miniboone-iterations")(inputs + [tmp_path / "ignored.json"], out)
    assert out.stat().st_size > 1000
