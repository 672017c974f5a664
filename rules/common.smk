# Helpers shared by the rules files (no rules here).
from otflows.experiments import experiment_index
from otflows.methods import METHODS

EXPERIMENTS = experiment_index(config)
TARGETS = []        # every rules file appends its final outputs; `rule all` asks for them
METRICS = []        # every evaluated experiment's metrics JSON, for the summary
RECORDS = []        # every training run's record, for MLflow
METHOD_PATTERN = "|".join(METHODS)


def experiment(wildcards):
    """The Experiment named by the {method} and {exp} wildcards."""
    return EXPERIMENTS[(wildcards.method, wildcards.exp)]


def metrics_path(e):
    return f"results/metrics/{e.method}/{e.name}.json"


def samples_path(e):
    return f"results/samples/{e.method}/{e.name}.npz"


def record_path(e):
    return f"results/records/{e.method}/{e.name}.json"


def runs(methods, sweep=None, dataset=None, benchmark=None):
    """Experiments of the given methods, optionally filtered."""
    return [e for e in EXPERIMENTS.values()
            if e.method in methods and (sweep is None or e.sweep == sweep)
            and (dataset is None or e.dataset == dataset)
            and (benchmark is None or e.benchmark == benchmark)]


def gpu_count(device):
    """Ask the scheduler for a GPU only where params ask for CUDA explicitly."""
    return 1 if device == "cuda" else 0
