# Helpers and names shared by the rules files (no rules here).
import inspect
import sys

try:  # Snakemake >= 8.?: a function carrying its parameters is not inspected again
    from snakemake.common import overwrite_function_params as _keep_params
except ImportError:  # pragma: no cover - older Snakemake inspects every call, still correct
    def _keep_params(fn, params):
        return None

from otflows.methods import METHODS
from otflows.pipeline.experiments import experiment_index, select_runs
from otflows.pipeline.experiments.base import mnist_name

EXPERIMENTS = experiment_index(config)

# Every wildcard of every rule: a name of letters, digits, '_', '.', '-' (the schema's `name`),
# so a target cannot smuggle '/', '..', spaces or shell syntax into a path or a command. Rules
# narrow these further (method names, digits); every path also reaches `shell:` quoted (:q).
SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


wildcard_constraints:
    method=SAFE_NAME,
    exp=SAFE_NAME,
    name=SAFE_NAME,
    tabular=SAFE_NAME,
    d=r"\d+",
    L=r"\d+",


# Scheduling order (Snakemake starts the ready job of highest priority first): data, then
# training, then evaluation, so the long chains (MNIST -> VAE -> latents -> Q-flow; OT-Flow
# -> JKO) start early and the many figures and tables, which nothing waits for, fill the
# cores at the end beside the MLflow import (a run on 2 cores had one core idle 35 % of its
# time with the default, input-size order).
PRIORITY = {"track": 50, "prepare": 40, "train": 30, "evaluate": 20}

TARGETS = []        # every rules file appends its final outputs; `rule all` asks for them
METRICS = []        # every evaluated experiment's metrics JSON, for the summary
RECORDS = []        # every training run's record, for MLflow
METHOD_PATTERN = "|".join(METHODS)
# methods the generic `evaluate` rule scores (the VAE is scored by `prepare_mnist_latents`)
EVALUATED_PATTERN = "|".join(sorted({e.method for e in EXPERIMENTS.values() if e.evaluate}))


def per_job(fn):
    """``fn`` (an input, params or resources function of the wildcards), its signature
    inspected once here: Snakemake otherwise inspects it for every job, ~2400 times per parse
    of the default profile (~10 % of a no-op `snakemake -n`)."""
    _keep_params(fn, inspect.signature(fn).parameters)
    return fn


def experiment(wildcards):
    """The Experiment named by the {method} and {exp} wildcards (a clear error if none)."""
    key = (wildcards.method, wildcards.exp)
    if key not in EXPERIMENTS:
        known = sorted(e for m, e in EXPERIMENTS if m == wildcards.method)[:8]
        raise ValueError(f"no experiment {key[0]}/{key[1]} in these params (some of "
                         f"{key[0]}'s: {', '.join(known) or 'none'}); see "
                         f"src/otflows/pipeline/experiments/")
    return EXPERIMENTS[key]


def init_inputs(e):
    """Model and history of the run that ``e`` continues from (JKO from single shot), or []."""
    if not e.init_from:
        return []
    source = EXPERIMENTS[tuple(e.init_from.split("/", 1))]
    return [source.model_path, source.history_path]


def init_flags(e):
    """CLI arguments naming init_inputs(e) (a list, quoted one by one with :q); [] for a
    run trained from scratch."""
    files = init_inputs(e)
    return ["--init-from", files[0], "--init-history", files[1]] if files else []


def eval_flags(e):
    """CLI arguments of `otflows evaluate` that mark a toy-benchmark run (--benchmark) or a
    cross-method benchmark run (--bench-eval and its settings); a list, quoted one by one."""
    if e.benchmark:
        return ["--benchmark"]
    if not e.bench_eval:
        return []
    b = config["benchmark"]
    return ["--bench-eval", "--sample-timing", str(b["sample_timing"]),
            "--bench-budget", str(b["train_seconds"]), "--bench-param-target",
            str(b["param_target"])]


def runs(methods, sweep=None, dataset=None, benchmark=None):
    """Experiments of the given methods, optionally filtered."""
    return select_runs(EXPERIMENTS.values(), methods, sweep, dataset, benchmark)


# The prepared MNIST file (mnist5k offline, or the full IDX set) and the VAE trained on it.
MNIST_NAME = mnist_name(config)
MNIST_DATA = f"data/processed/{MNIST_NAME}.npz"
_VAE_RUN = EXPERIMENTS[("vae", MNIST_NAME)]
VAE = {"ckpt": _VAE_RUN.model_path, "metrics": _VAE_RUN.metrics_path,
       "samples": _VAE_RUN.samples_path}


def gpu_count(device):
    """Ask the scheduler for a GPU only where params ask for CUDA explicitly."""
    return 1 if device == "cuda" else 0


# Scheduler resources of the train and evaluate jobs, sized from the run config (a cluster
# reads them; a local run ignores mem_mb and runtime). Calibrated on one CPU thread of this
# machine kind: a PyTorch process is ~400 MB resident; an OT-Flow iteration at batch 2000,
# width 16, nt 8 takes ~80 ms; evaluating 6000 samples + a 120^2 density grid peaks at
# ~900 MB. The estimates below are about twice those measurements. One thread per job: two
# threads were no faster at the paper's batch size (the 2-D toys are too small to split).
# Calibrated on OT-Flow/JKO; other methods are sized by the same keys where they have them.
_DTYPE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}


def _process_mb(device):
    """Resident memory of the PyTorch process itself; a CUDA context maps far more."""
    return 4096 if device == "cuda" else 1024


def _features(e):
    """Activations per point per RK4 stage: the potential's hidden units plus the state."""
    return (e.cfg.get("width") or 64) * (e.cfg.get("n_layers") or 2) + 8


def _rk4_steps(e, key="nt"):
    """Integration steps per flow: OT-Flow's `nt`/`nt_eval`, else a method's `steps`."""
    return e.cfg.get(key) or e.cfg.get("nt") or e.cfg.get("steps") or 8


def _round_up(value, step):
    return int(-(-value // step) * step)


def train_mem_mb(e, device="cpu"):
    """Memory (MB) to ask for training experiment `e`: the process plus what backprop keeps
    (batch x RK4 steps x 4 stages x features, ~4 tensors each, in the run's dtype)."""
    itemsize = _DTYPE_BYTES.get(e.cfg.get("dtype", "float32"), 8)
    kept = e.cfg.get("batch_size", 1024) * _rk4_steps(e) * 4 * _features(e) * itemsize * 4
    return _process_mb(device) + _round_up(kept / 2**20, 256)


def train_runtime_min(e):
    """Wall time (minutes) to ask for training `e`: K subproblems of `iters` steps at
    ~1.3e-7 s per point, RK4 step and feature on one CPU thread, doubled, plus 10 min."""
    c = e.cfg
    seconds = (c.get("iters", 1000) * c.get("K", 1) * c.get("batch_size", 1024)
               * _rk4_steps(e) * _features(e) * 1.3e-7)
    return 10 + _round_up(2 * seconds / 60, 1)


def eval_points(e):
    """Points pushed through the flow at evaluation: samples plus the density grid."""
    return e.eval_samples + e.density_grid ** 2


def evaluate_mem_mb(e, device="cpu"):
    """Memory (MB) to ask for evaluating `e`: nothing is kept across RK4 steps without
    backprop; ~80 values per point and feature (measured ~40, in the run's dtype)."""
    itemsize = _DTYPE_BYTES.get(e.cfg.get("dtype", "float32"), 8)
    kept = eval_points(e) * _features(e) * itemsize * 80
    return _process_mb(device) + _round_up(kept / 2**20, 256)


def evaluate_runtime_min(e):
    """Wall time (minutes) to ask for evaluating `e` (~4.6e-7 s per point, RK4 step, map
    and feature on one CPU thread), doubled, plus 10 min."""
    seconds = (eval_points(e) * _rk4_steps(e, "nt_eval") * e.cfg.get("K", 1) * _features(e)
               * 4.6e-7)
    return 10 + _round_up(2 * seconds / 60, 1)


def resource_problems(experiments, cfg):
    """One line per experiment whose estimated memory or wall time exceeds run.max_job_*."""
    cap_mb, cap_h = cfg["run"]["max_job_mem_mb"], cfg["run"]["max_job_hours"]
    out = []
    for (method, exp), e in sorted(experiments.items()):
        mem = max(train_mem_mb(e), evaluate_mem_mb(e) if e.evaluate else 0)
        hours = max(train_runtime_min(e), evaluate_runtime_min(e) if e.evaluate else 0) / 60
        if mem > cap_mb:
            out.append(f"{method}/{exp}: needs ~{mem} MB > run.max_job_mem_mb {cap_mb} "
                       f"(lower {method}'s batch_size, width, steps or eval sizes)")
        if hours > cap_h:
            out.append(f"{method}/{exp}: needs ~{hours:.3g} h > run.max_job_hours {cap_h} "
                       f"(lower {method}'s iters, batch_size, nt/steps or width)")
    return out


_RESOURCE_PROBLEMS = resource_problems(EXPERIMENTS, config)
if _RESOURCE_PROBLEMS:
    sys.exit("otflows: invalid params, nothing was run:\n  " + "\n  ".join(_RESOURCE_PROBLEMS))
