"""Compare committed results between two git revisions.

Reads the metrics *as committed* (``git ls-tree`` / ``git show``, never the working tree):
the per-experiment files ``results/metrics/<method>/<experiment>.json`` and, for a revision
that has none, ``results/metrics/summary.json``. Produces a table of every metric whose value
differs (including metrics present on one side only) and, for every PNG under
``results/figures/`` present in both revisions, a side-by-side image.

``otflows compare REV_A REV_B [--out DIR]`` calls :func:`run_compare`. For the DVC view of
the same question see ``dvc metrics diff``, ``dvc params diff`` and ``dvc plots diff``.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

__all__ = ["Comparison", "compare_revisions", "write_comparison", "run_compare"]

METRICS_DIR = "results/metrics"
SUMMARY_JSON = "results/metrics/summary.json"
FIGURES_DIR = "results/figures"
COLUMNS = ["method", "experiment", "metric", "value_a", "value_b", "abs_change", "rel_change"]
# Keys of a per-experiment metrics file that identify the run rather than measure it.
IDENTITY_KEYS = frozenset({"method", "experiment", "dataset", "seed", "device"})

Metrics = dict[tuple[str, str, str], float]


@dataclass(frozen=True)
class Comparison:
    """Differences between the committed results of two revisions.

    Attributes:
        repo: top level of the git work tree the revisions were read from.
        rev_a, rev_b: the revisions as given (e.g. ``HEAD~1``).
        sha_a, sha_b: the full commit SHAs they resolved to.
        short_a, short_b: abbreviated SHAs (``git rev-parse --short``).
        table: one row per differing metric, columns ``method, experiment, metric, value_a,
            value_b, abs_change, rel_change``; ``abs_change = value_b - value_a`` (signed),
            ``rel_change = abs_change / |value_a|`` (NaN where undefined: ``value_a`` is 0
            or a side is missing, in which case that side's value is NaN too). Empty when
            no metric differs.
        figures: repo-relative paths of PNGs under ``results/figures/`` in both revisions.
        changed_figures: the subset of ``figures`` whose committed bytes differ.
        sources_a, sources_b: the metrics files read at each revision.
    """

    repo: Path
    rev_a: str
    rev_b: str
    sha_a: str
    sha_b: str
    short_a: str
    short_b: str
    table: pd.DataFrame
    figures: list[str] = field(default_factory=list)
    changed_figures: list[str] = field(default_factory=list)
    sources_a: list[str] = field(default_factory=list)
    sources_b: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- git access


def _git(repo: Path, *args: str) -> bytes:
    """Run ``git -C repo args...`` and return stdout; raise RuntimeError with git's message."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"`git {' '.join(args)}` failed in {repo}: {message}")
    return proc.stdout


def _toplevel(repo: Path) -> Path:
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ValueError(f"{repo} is not inside a git work tree: {proc.stderr.strip()}")
    return Path(proc.stdout.strip())


def _resolve(repo: Path, rev: str) -> tuple[str, str]:
    """Return (full SHA, short SHA) of commit ``rev``; ValueError naming it if unknown."""
    proc = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{rev}^{{commit}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ValueError(f"unknown git revision {rev!r} in {repo}")
    sha = proc.stdout.strip()
    short = _git(repo, "rev-parse", "--short", sha).decode().strip()
    return sha, short


def _tree(repo: Path, sha: str, directory: str) -> dict[str, str]:
    """Map repo-relative path -> blob id for every file under ``directory`` at ``sha``."""
    out = _git(repo, "ls-tree", "-r", "-z", "--full-tree", sha, "--", directory)
    blobs: dict[str, str] = {}
    for entry in out.decode().split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        _mode, kind, blob = meta.split()
        if kind == "blob":
            blobs[path] = blob
    return blobs


def _show(repo: Path, sha: str, path: str) -> bytes:
    return _git(repo, "show", f"{sha}:{path}")


# --------------------------------------------------------------------------- metrics


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _load_json(repo: Path, sha: str, short: str, path: str) -> object:
    try:
        return json.loads(_show(repo, sha, path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} at {short} is not valid JSON: {err}") from err


def _read_metrics(repo: Path, sha: str, short: str) -> tuple[Metrics, list[str]]:
    """Numeric metrics committed at ``sha`` keyed by (method, experiment, metric)."""
    files = sorted(
        path
        for path in _tree(repo, sha, METRICS_DIR)
        if path.endswith(".json") and len(PurePosixPath(path).relative_to(METRICS_DIR).parts) == 2
    )
    metrics: Metrics = {}
    if files:
        for path in files:
            rel = PurePosixPath(path).relative_to(METRICS_DIR)
            method, experiment = rel.parts[0], rel.stem
            record = _load_json(repo, sha, short, path)
            if not isinstance(record, dict):
                raise ValueError(f"{path} at {short}: expected a JSON object, got {record!r:.80}")
            for name, value in record.items():
                if name not in IDENTITY_KEYS and _is_number(value):
                    metrics[(method, experiment, name)] = float(value)
        return metrics, files

    if SUMMARY_JSON not in _tree(repo, sha, SUMMARY_JSON):
        return metrics, []
    summary = _load_json(repo, sha, short, SUMMARY_JSON)
    if not isinstance(summary, dict):
        raise ValueError(f"{SUMMARY_JSON} at {short}: expected {{method: {{experiment: ...}}}}")
    for method, experiments in summary.items():
        if not isinstance(experiments, dict):
            continue
        for experiment, values in experiments.items():
            if not isinstance(values, dict):
                continue
            for name, value in values.items():
                if _is_number(value):
                    metrics[(method, experiment, name)] = float(value)
    return metrics, [SUMMARY_JSON]


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _difference_table(metrics_a: Metrics, metrics_b: Metrics) -> pd.DataFrame:
    rows = []
    for key in sorted(metrics_a.keys() | metrics_b.keys()):
        a = metrics_a.get(key, math.nan)
        b = metrics_b.get(key, math.nan)
        if key in metrics_a and key in metrics_b and _same(a, b):
            continue
        change = b - a
        rel = change / abs(a) if a != 0 and math.isfinite(a) else math.nan
        rows.append((*key, a, b, change, rel))
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({c: float for c in COLUMNS[3:]})


def compare_revisions(repo: Path, rev_a: str, rev_b: str) -> Comparison:
    """Compare the committed metrics and figures of ``rev_a`` and ``rev_b`` in ``repo``.

    Raises:
        ValueError: ``repo`` is not a git work tree, a revision is unknown
            (``"unknown git revision 'X' in REPO"``) or a committed metrics file is malformed.
    """
    root = _toplevel(Path(repo))
    sha_a, short_a = _resolve(root, rev_a)
    sha_b, short_b = _resolve(root, rev_b)
    metrics_a, sources_a = _read_metrics(root, sha_a, short_a)
    metrics_b, sources_b = _read_metrics(root, sha_b, short_b)

    figures_a = {p: b for p, b in _tree(root, sha_a, FIGURES_DIR).items() if p.endswith(".png")}
    figures_b = {p: b for p, b in _tree(root, sha_b, FIGURES_DIR).items() if p.endswith(".png")}
    figures = sorted(figures_a.keys() & figures_b.keys())
    return Comparison(
        repo=root,
        rev_a=rev_a,
        rev_b=rev_b,
        sha_a=sha_a,
        sha_b=sha_b,
        short_a=short_a,
        short_b=short_b,
        table=_difference_table(metrics_a, metrics_b),
        figures=figures,
        changed_figures=[p for p in figures if figures_a[p] != figures_b[p]],
        sources_a=sources_a,
        sources_b=sources_b,
    )


# --------------------------------------------------------------------------- output


def _fmt(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.6g}"


def _fmt_rel(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.2%}"


def _label(rev: str, sha: str, short: str) -> str:
    """``short`` alone when ``rev`` is a SHA prefix, else ``short (rev)``."""
    return short if sha.startswith(rev) else f"{short} ({rev})"


def _markdown(cmp: Comparison) -> str:
    """The comparison as a markdown document (title, table or "no metric differs", figures)."""
    a = _label(cmp.rev_a, cmp.sha_a, cmp.short_a)
    b = _label(cmp.rev_b, cmp.sha_b, cmp.short_b)
    lines = [f"# Comparison {a} → {b}", ""]
    for short, sources in ((cmp.short_a, cmp.sources_a), (cmp.short_b, cmp.sources_b)):
        if not sources:
            lines.append(f"No committed metrics under {METRICS_DIR}/ at {short}.")
    if cmp.table.empty:
        lines.append(f"No metric differs between {cmp.short_a} and {cmp.short_b}.")
    else:
        header = ["method", "experiment", "metric", cmp.short_a, cmp.short_b, "change", "rel."]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["---:"] * 4) + "|")
        for row in cmp.table.itertuples(index=False):
            cells = [
                row.method,
                row.experiment,
                row.metric,
                _fmt(row.value_a),
                _fmt(row.value_b),
                _fmt(row.abs_change),
                _fmt_rel(row.rel_change),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if cmp.figures:
        lines += ["", "Figures in both revisions:", ""]
        for path in cmp.figures:
            state = "changed" if path in cmp.changed_figures else "identical"
            lines.append(f"- {path} ({state})")
    return "\n".join(lines) + "\n"


def _side_by_side(cmp: Comparison, path: str, out: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.image import imread

    images = [
        imread(io.BytesIO(_show(cmp.repo, sha, path)), format="png")
        for sha in (cmp.sha_a, cmp.sha_b)
    ]
    dpi = 100
    width = sum(img.shape[1] for img in images) / dpi
    height = max(img.shape[0] for img in images) / dpi + 0.6
    fig = Figure(figsize=(max(width, 4.0), max(height, 2.0)), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    labels = (_label(cmp.rev_a, cmp.sha_a, cmp.short_a), _label(cmp.rev_b, cmp.sha_b, cmp.short_b))
    for ax, img, label in zip(axes, images, labels, strict=True):
        ax.imshow(np.asarray(img))
        ax.set_title(label)
        ax.set_axis_off()
    fig.suptitle(PurePosixPath(path).name)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def write_comparison(cmp: Comparison, out_dir: Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``figures/<name>.png`` (side by side,
    left ``rev_a``, right ``rev_b``) for each PNG figure in both revisions; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "comparison.md"
    md.write_text(_markdown(cmp), encoding="utf-8")
    csv = out_dir / "comparison.csv"
    cmp.table.to_csv(csv, index=False)
    written = [md, csv]
    for path in cmp.figures:
        out = out_dir / "figures" / PurePosixPath(path).relative_to(FIGURES_DIR)
        _side_by_side(cmp, path, out)
        written.append(out)
    return written


def run_compare(rev_a: str, rev_b: str, repo: Path, out_dir: Path | None) -> int:
    """Compare two revisions, print the markdown to stdout and write the files.

    ``out_dir`` defaults to ``<repo>/results/compare/<shortA>_<shortB>/``. Returns 0 on
    success (whether or not metrics differ) and 2 on a usage error (unknown revision, not a
    git repository, malformed metrics file), after printing the reason to stderr.
    """
    try:
        cmp = compare_revisions(repo, rev_a, rev_b)
    except ValueError as err:
        print(f"otflows compare: error: {err}", file=sys.stderr)
        return 2
    if out_dir is None:
        out_dir = cmp.repo / "results" / "compare" / f"{cmp.short_a}_{cmp.short_b}"
    written = write_comparison(cmp, out_dir)
    print(_markdown(cmp), end="")
    print(f"wrote {len(written)} files to {out_dir}", file=sys.stderr)
    return 0
