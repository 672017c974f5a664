"""Params: schema validation with defaults, and the per-run config hash.

``validate_params`` is called by the Snakefile before any job is scheduled, so a wrong type,
a negative step size, an unknown key or an unsafe name stops everything with one message
that names the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

__all__ = ["ParamsError", "validate_params", "load_params", "config_hash", "deep_merge"]


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
        if key not in instance:
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
    if error.validator == "pattern":
        return (f"{where}: {error.instance!r} is not allowed: names may hold only letters, "
                f"digits, '_', '.', '-' (they become file names and shell arguments)")
    if error.validator == "required":
        missing = sorted(set(error.validator_value) - set(error.instance))
        section = f" of section {where}" if where != "<top level>" else " (a top-level section)"
        return "; ".join(f"{k}: missing{section}; add it to params.yaml (the schema gives it "
                         f"no default)" for k in missing)
    return f"{where}: {error.message}"


def validate_params(config: dict, schema_path: str | Path) -> dict:
    """Fill defaults into ``config`` in place and validate it; raise ParamsError naming keys."""
    root = yaml.safe_load(Path(schema_path).read_text())
    _fill_defaults(config, root, root)
    validator = Draft202012Validator(root)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = "\n  ".join(_describe(e) for e in errors)
        raise ParamsError(f"invalid params ({len(errors)} problem(s)), nothing was run:\n  "
                          f"{lines}\nSee {schema_path} for every key, its type and default.")
    return config


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
        config = deep_merge(config, yaml.safe_load(Path(path).read_text()) or {})
    return validate_params(config, schema_path)


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable config (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
