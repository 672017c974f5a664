"""Params: schema validation with defaults, and the per-run config hash.

``validate_params`` is called by the Snakefile before any job is scheduled, so a wrong type,
a negative step size, an unknown key or an unsafe name stops everything with one message
that names the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # jsonschema is imported only when a config is actually validated
    from jsonschema.exceptions import ValidationError

__all__ = ["ParamsError", "validate_params", "validate_params_cached", "load_params",
           "config_hash", "deep_merge", "read_yaml", "check_yaml_files", "check_device"]

# What PyYAML (YAML 1.1) reads as a float needs a '.' and a signed exponent: `1.0e6` and
# `1e-3` are strings there (https://yaml.org/type/float.html); they are explained, not guessed.
_FLOAT_LIKE = re.compile(r"^[-+]?(\d[\d_]*\.?\d*|\.\d+)[eE][-+]?\d+$")
_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # the schema's $defs/name
_INT_CAP = 2**31 - 1  # every count, size and step number fits a C int
# libyaml's parser where PyYAML was built with it: the same documents, ~10x faster to read
# (the schema and params are read whenever the Snakefile is parsed, e.g. by every `-n`).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParamsError(ValueError):
    """params.yaml (or an override) does not satisfy schemas/params.schema.yaml."""


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _resolve(merged, root) if "$ref" in target else merged
    return schema


def _fill_defaults(instance: Any, schema: dict, root: dict) -> None:
    """Insert the schema's defaults (given once, there) for absent keys. An absent optional
    section is created and filled; an absent *required* key or section is left absent, so
    validation reports it by name instead of a default silently standing in."""
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return
    required = set(schema.get("required", ()))
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in instance and key not in required:
            if "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            elif sub.get("type") == "object" and "properties" in sub and key not in required:
                instance[key] = {}
        if key in instance:
            _fill_defaults(instance[key], sub, root)


def _where(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _describe(error: ValidationError) -> str:
    where = _where(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        prefix = f"{where}." if where != "<top level>" else ""
        return "; ".join(f"{prefix}{k}: unknown key (allowed here: {', '.join(allowed)})"
                         for k in extra)
    if error.validator == "pattern" and error.validator_value != _NAME_PATTERN:
        return (f"{where}: {error.instance!r} is not allowed: it must match "
                f"{error.validator_value} (no spaces or shell metacharacters)")
    if error.validator == "pattern":
        return (f"{where}: {error.instance!r} is not allowed: names may hold only letters, "
                f"digits, '_', '.', '-' (they become file names and shell arguments)")
    if error.validator == "type" and isinstance(error.instance, str) and _FLOAT_LIKE.match(
            error.instance.strip()):
        return (f"{where}: {error.instance!r} is a string, not a number: YAML 1.1 (PyYAML, "
                f"Snakemake) reads a float only with a '.' and a signed exponent; write "
                f"{_yaml11(error.instance)}")
    if error.validator in ("maximum", "exclusiveMaximum"):
        bound = "below" if error.validator == "exclusiveMaximum" else "at most"
        why = f": {error.schema['description']}" if "description" in error.schema else ""
        return f"{where}: {error.instance!r} is too large (must be {bound} " \
               f"{error.validator_value}{why})"
    if error.validator == "required":
        missing = sorted(set(error.validator_value) - set(error.instance))
        section = f" of section {where}" if where != "<top level>" else " (a top-level section)"
        return "; ".join(f"{k}: missing{section}; add it to params.yaml (the schema gives it "
                         f"no default)" for k in missing)
    return f"{where}: {error.message}"


def _yaml11(text: str) -> str:
    """``text`` spelled as a YAML 1.1 float (``1.0e6`` -> ``1.0e+6``)."""
    mant, _, exp = text.strip().lower().partition("e")
    mant = mant if "." in mant else mant + ".0"
    return f"{mant}e{exp if exp[:1] in '+-' else '+' + exp}" if exp else mant


def _numbers(obj: Any, where: str = "") -> list[str]:
    """Problems no schema keyword catches: NaN/inf anywhere, integers beyond a C int."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _numbers(v, f"{where}.{k}" if where
                                                             else str(k))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _numbers(v, f"{where}[{i}]")]
    if isinstance(obj, float) and not math.isfinite(obj):
        return [f"{where}: {obj!r} is not allowed (numbers must be finite)"]
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > _INT_CAP and \
            where != "seed":
        return [f"{where}: {obj!r} is too large (at most {_INT_CAP})"]
    return []


def _cross_checks(config: dict) -> list[str]:
    """Combinations the per-key schema cannot see (each names both keys)."""
    out = []
    jko = config.get("jko", {})
    alphas = [float(a) for a in jko.get("alphas", [])]
    if "benchmark_alpha" in jko and alphas and float(jko["benchmark_alpha"]) not in alphas:
        out.append(f"jko.benchmark_alpha: {jko['benchmark_alpha']!r} is not one of jko.alphas "
                   f"{jko['alphas']} (Fig. 2 and the toy benchmark would have no JKO run)")
    mnist = config.get("data", {}).get("mnist", {})
    if mnist.get("source") == "mnist5k":
        held = mnist.get("n_validation", 0) + mnist.get("n_test", 0)
        if isinstance(held, int) and held >= 5000:
            out.append(f"data.mnist.n_validation + n_test: {held} leaves no training images "
                       f"of mnist5k's 5000 (keep the sum below 5000)")
    tr = config.get("qflow", {}).get("translation", {})
    if tr and tr.get("source") == tr.get("target"):
        out.append(f"qflow.translation.target: {tr.get('target')!r} equals source (a digit "
                   f"is translated into another digit)")
    return out


def validate_params(config: dict, schema_path: str | Path) -> dict:
    """Fill defaults into ``config`` in place and validate it; raise ParamsError naming keys."""
    from jsonschema import Draft202012Validator

    root = yaml.load(Path(schema_path).read_text(), Loader=_SafeLoader)  # noqa: S506 - safe
    _fill_defaults(config, root, root)
    validator = Draft202012Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    lines = [_describe(e) for e in errors]
    reported = {_where(e) for e in errors}  # one line per key: the schema's, if it spoke
    lines += [line for line in _numbers(config) if line.split(": ", 1)[0] not in reported]
    if not errors:  # combinations are judged only once every key is valid on its own
        lines += _cross_checks(config)
    if lines:
        text = "\n  ".join(lines)
        raise ParamsError(f"invalid params ({len(lines)} problem(s)), nothing was run:\n  "
                          f"{text}\nSee {schema_path} for every key, its type and default.")
    return config


def validate_params_cached(config: dict, schema_path: str | Path, cache: str | Path) -> dict:
    """:func:`validate_params`, remembered in the file ``cache``: a config that passed once,
    with the same schema file and this module unchanged, is filled from there without
    validating again (every ``snakemake`` call, ``-n`` included, parses the Snakefile). A
    config that is not plain JSON (NaN, non-string keys) is validated in full every time."""
    try:
        text = json.dumps(config, sort_keys=True, allow_nan=False)
        plain = json.loads(text) == config
    except (TypeError, ValueError):
        plain = False
    if not plain:
        return validate_params(config, schema_path)
    digest = hashlib.sha256()
    for part in (text.encode(), Path(schema_path).read_bytes(), Path(__file__).read_bytes()):
        digest.update(hashlib.sha256(part).digest())
    key, cache = digest.hexdigest(), Path(cache)
    try:
        stored = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    if isinstance(stored, dict) and stored.get("key") == key and \
            isinstance(stored.get("config"), dict):
        config.clear()
        config.update(stored["config"])
        return config
    validate_params(config, schema_path)  # raises ParamsError: nothing is remembered
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "config": config}), encoding="utf-8")
        os.replace(tmp, cache)
    except (OSError, TypeError, ValueError):
        pass  # a read-only tree: validated in full each time, as before
    return config


class _StrictLoader(_SafeLoader):
    """SafeLoader that refuses a mapping holding the same key twice."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ParamsError(
                f"{key_node.start_mark.name}:{key_node.start_mark.line + 1}: key {key!r} "
                f"appears twice in one mapping (first on line {seen[key] + 1}); YAML would "
                f"silently keep the last: delete one")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def read_yaml(path: str | Path) -> Any:
    """Parse one params file strictly (duplicate keys and syntax errors: ParamsError)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as err:
        raise ParamsError(f"{path}: cannot read it ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err


def check_yaml_files(paths: list[str | Path]) -> None:
    """Re-read the params files Snakemake already loaded, strictly (it keeps duplicates)."""
    for path in dict.fromkeys(str(p) for p in paths):
        read_yaml(path)


def check_device(config: dict) -> None:
    """``device: cuda`` on a machine without CUDA: a ParamsError before any job starts."""
    if config.get("device") != "cuda":
        return
    import torch  # only here: the check costs an import of torch only when CUDA is asked for

    if not torch.cuda.is_available():
        raise ParamsError("device: 'cuda' is not available on this machine "
                          "(torch.cuda.is_available() is False); use auto (CUDA when present) "
                          "or cpu, or run on a GPU node")


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated recursively by ``override`` (lists are replaced)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(paths: list[str | Path], schema_path: str | Path) -> dict:
    """Load params.yaml and overrides in order (as ``--configfile`` does) and validate."""
    config: dict = {}
    for path in paths:
        config = deep_merge(config, read_yaml(path) or {})
    return validate_params(config, schema_path)


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable config (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
