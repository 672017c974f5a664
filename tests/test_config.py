import copy
from pathlib import Path

import pytest
import yaml

from otflows.pipeline.config import (
    ParamsError,
    config_hash,
    deep_merge,
    load_params,
    read_yaml,
    validate_params,
)
from otflows.pipeline.experiments import all_experiments

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "params.schema.yaml"


def _params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("profile", [[], ["config/smoke.yaml"], ["config/paper.yaml"]])
def test_every_profile_validates(profile):
    cfg = load_params([ROOT / "params.yaml", *(ROOT / p for p in profile)], SCHEMA)
    assert cfg["otflow"]["iters"] >= 1 and all_experiments(cfg)


def test_defaults_fill_missing_keys_of_present_sections():
    present = {"seed": 0, "device": "cpu", "data": {"toy": {}},
               **{k: {} for k in ("tracking", "run", "otflow", "jko")}}
    cfg = validate_params(present, SCHEMA)
    assert cfg["otflow"]["nt"] == 8 and cfg["data"]["toy"]["n_train"] == 20000
    assert cfg["tracking"]["uri"] == "sqlite:///mlflow.db"
    assert cfg["seed"] == 0 and cfg["cpflow"]["toy"]["depth"] >= 1  # optional: filled


def test_a_missing_required_section_is_named_not_filled():
    with pytest.raises(ParamsError) as err:
        validate_params({"seed": 0, "device": "cpu", "data": {"toy": {}},
                         **{k: {} for k in ("tracking", "run", "jko")}}, SCHEMA)
    assert str(err.value).count("missing") == 1
    assert "otflow: missing (a top-level section)" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["otflow"].update(lr=-0.1), r"otflow\.lr: -0\.1 is less than or equal"),
        (lambda c: c["otflow"].update(iters="many"), r"otflow\.iters: 'many' is not of type"),
        (lambda c: c["jko"].update(datasets=["moons", "mnist"]),
         r"jko\.datasets\[1\]: 'mnist' is not one of"),
        (lambda c: c["otflow"].update(widht=3), r"otflow\.widht: unknown key"),
        (lambda c: c.update(realnvp={}), r"realnvp: unknown key"),
        (lambda c: c["tracking"].update(experiment="x; rm -rf /"),
         r"tracking\.experiment: 'x; rm -rf /' is not allowed"),
        (lambda c: c["tracking"].update(uri="sqlite:///a.db`id`"), r"tracking\.uri"),
        (lambda c: c["jko"].update(alphas=[5, -1]), r"jko\.alphas\[1\]"),
        (lambda c: c.update(device="tpu"), r"device: 'tpu' is not one of"),
    ],
)
def test_rejections_name_the_key(edit, message):
    cfg = _params()
    edit(cfg)
    with pytest.raises(ParamsError, match=message):
        validate_params(cfg, SCHEMA)


def test_all_problems_reported_at_once():
    cfg = _params()
    cfg["otflow"]["lr"] = 0
    cfg["otflow"]["nt"] = 0
    with pytest.raises(ParamsError, match=r"2 problem\(s\)"):
        validate_params(cfg, SCHEMA)


def test_run_configs_are_scoped():
    base = validate_params(_params(), SCHEMA)
    edited = copy.deepcopy(base)
    edited["jko"]["K"] = 3
    before = {e.key: e.cfg_json() for e in all_experiments(base)}
    after = {e.key: e.cfg_json() for e in all_experiments(edited)}
    changed = {k for k in before if before[k] != after[k]}
    # Changing K touches every JKO run and no single-shot run.
    assert changed and all(k.startswith("jko/") for k in changed)
    assert len(changed) == sum(k.startswith("jko/") for k in before)


def test_paper_parameter_counts_match_table2_widths():
    # JKO-Flow (Sec. 5): widths 3, 4, 5, 8, 16 have 40, 53, 68, 125, 365 parameters.
    torch = pytest.importorskip("torch")
    from otflows.methods import get_method

    cfg = validate_params(_params(), SCHEMA)
    solver = {k: v for k, v in cfg["otflow"].items() if k != "eval_samples"}
    x = torch.zeros(10, 2).numpy()
    for width, count in zip([3, 4, 5, 8, 16], [40, 53, 68, 125, 365], strict=True):
        t = get_method("otflow").make_trainer({**solver, "width": width, "alpha": 5.0, "K": 1},
                                             x, 0, torch.device("cpu"))
        assert t.n_parameters() == count


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_the_width_sweep_reuses_the_alpha_run_at_its_point():
    # Table 2's m = 16 point (alpha 5; 50 for 2 Spirals) is Table 1's run: trained once.
    cfg = validate_params(_params(), SCHEMA)
    runs = [e for e in all_experiments(cfg) if e.method in ("otflow", "jko")]
    width = [e for e in runs if e.in_sweep("jko_width")]
    assert len(width) == 2 * len(cfg["jko"]["datasets"]) * len(cfg["jko"]["widths"])
    m16 = {(e.method, e.dataset): e for e in width if e.cfg["width"] == cfg["otflow"]["width"]}
    assert m16[("jko", "2spirals")].name == "alpha-2spirals-a50"
    assert m16[("otflow", "moons")].name == "alpha-moons-a5"
    assert all(e.sweep == "jko_alpha" for e in m16.values())
    assert len({e.key for e in runs}) == len(runs)  # no run is listed twice
    # an alpha outside the alpha sweep gets a run of its own
    cfg["jko"]["default_width_alpha"] = 7
    runs = [e for e in all_experiments(cfg) if e.method == "jko" and e.in_sweep("jko_width")]
    assert {e.sweep for e in runs if e.dataset == "moons"} == {"jko_width"}


def test_gpu_slice_is_the_paper_settings_on_a_few_runs():
    """config/gpu-slice.yaml (after smoke) runs a handful of runs, each at exactly the paper
    profile's settings: every key it sets for a run equals config/paper.yaml's, where that
    profile sets it."""
    slice_ = yaml.safe_load((ROOT / "config/gpu-slice.yaml").read_text())
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())

    def same(a: dict, b: dict, where: str) -> list[str]:
        out = []
        for k, v in a.items():
            if isinstance(v, dict) and isinstance(b.get(k), dict):
                out += same(v, b[k], f"{where}.{k}")
            elif k in b and k not in ("datasets", "alphas", "widths", "dims", "benchmark_alpha"):
                out += [] if b[k] == v else [f"{where}.{k}: {v!r} vs paper {b[k]!r}"]
        return out

    differ = [d for section in ("otflow", "jko", "ekp", "cpflow", "qflow", "mongeampere")
              for d in same(slice_[section], paper.get(section, {}), section)]
    assert not differ, differ
    cfg = load_params([ROOT / "params.yaml", ROOT / "config/smoke.yaml",
                       ROOT / "config/gpu-slice.yaml"], SCHEMA)
    runs = all_experiments(cfg, ROOT)
    assert len(runs) <= 30
    assert {("jko", "alpha-8gaussians-a5"), ("mongeampere", "ising-L16"),
            ("qflow", "mi-d40")} <= {(e.method, e.name) for e in runs}


def test_a_cached_validation_fills_the_same_config_and_never_passes_a_bad_one(
        tmp_path, monkeypatch):
    import otflows.pipeline.config as config_module
    from otflows.pipeline.config import validate_params_cached

    cache = tmp_path / "validated.json"
    raw = deep_merge(read_yaml(ROOT / "params.yaml"), read_yaml(ROOT / "config/smoke.yaml"))
    raw["otflow"].pop("nt")  # a key the schema's default fills in
    expected = validate_params(copy.deepcopy(raw), SCHEMA)
    assert validate_params_cached(copy.deepcopy(raw), SCHEMA, cache) == expected
    assert cache.exists()

    def must_not_run(*_args):
        raise AssertionError("validated again although the same config passed before")

    monkeypatch.setattr(config_module, "validate_params", must_not_run)
    again = copy.deepcopy(raw)
    assert validate_params_cached(again, SCHEMA, cache) == expected == again  # in place
    monkeypatch.undo()

    bad = copy.deepcopy(raw)
    bad["otflow"]["lr"] = -1.0
    with pytest.raises(ParamsError, match="otflow.lr"):
        validate_params_cached(bad, SCHEMA, cache)
    nan = copy.deepcopy(raw)
    nan["otflow"]["lr"] = float("nan")  # not plain JSON: validated in full, every time
    with pytest.raises(ParamsError, match="finite"):
        validate_params_cached(nan, SCHEMA, cache)
    assert validate_params_cached(copy.deepcopy(raw), SCHEMA, cache) == expected


def test_the_validation_cache_is_keyed_on_the_schema_file(tmp_path):
    from otflows.pipeline.config import validate_params_cached

    cache = tmp_path / "validated.json"
    raw = read_yaml(ROOT / "params.yaml")
    validate_params_cached(copy.deepcopy(raw), SCHEMA, cache)
    schema = yaml.safe_load(SCHEMA.read_text())
    schema["properties"]["otflow"]["properties"]["lr"]["maximum"] = 1e-9
    strict = tmp_path / "schema.yaml"
    strict.write_text(yaml.safe_dump(schema))
    with pytest.raises(ParamsError, match="otflow.lr"):
        validate_params_cached(copy.deepcopy(raw), strict, cache)
