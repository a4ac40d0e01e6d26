"""Turn schema violations into one paragraph per problem, written for a person.

Each paragraph names the key path, the bad value and what is allowed, and suggests the
nearest valid key or value for a typo.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The closest option to `word`, if any is close enough to be a likely typo."""
    matches = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unwrap(annotation: Any) -> Any:
    """Optional[X] / X | None -> X."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _node_type(root: type[BaseModel], loc: Sequence[Any]) -> Any:
    """The type expected at `loc` inside `root` (None when it cannot be followed)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return None
    return _unwrap(current)


def _allowed_keys(root: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    node = _node_type(root, loc)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _path(prefix: str, loc: Sequence[Any]) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc if not str(p).startswith("function-")]
    return ".".join(parts) or "(root)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(error: dict[str, Any], root: type[BaseModel], prefix: str = "") -> str:
    """One paragraph for one pydantic error dict."""
    loc = [p for p in error["loc"] if not str(p).startswith("function-")]
    kind = error["type"]
    value = error.get("input")
    where = _path(prefix, loc)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(root, loc[:-1])
        hint = nearest(key, allowed)
        return (
            f"{where}: unknown key {key!r}"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + (f". Allowed keys here: {', '.join(allowed)}." if allowed else ".")
        )
    if kind == "missing":
        return f"{where}: required key is missing."
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        hint = nearest(str(value), options)
        return (
            f"{where}: {_show(value)} is not allowed"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f". Allowed: {', '.join(o for o in options if o)}."
        )
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{where}: {message}." if loc else f"{message}."
    return f"{where}: {error['msg'].rstrip('.')} (got {_show(value)})."


def format_validation_error(
    exc: ValidationError, root: type[BaseModel], prefix: str = "", source: str = "params.yaml"
) -> str:
    """The message of a `ConfigError` for every problem in `exc`, one paragraph each."""
    seen: list[str] = []
    for error in exc.errors(include_url=False):
        text = describe(dict(error), root, prefix)
        if text not in seen:
            seen.append(text)
    head = f"The configuration in {source} is invalid ({len(seen)} problem"
    head += "s):" if len(seen) > 1 else "):"
    return "\n".join([head, *(f"  - {line}" for line in seen)])
