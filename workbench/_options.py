"""Keyword options of things built by name (datasets, models): the allowed names come from the builder's signature."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def option_defaults(builder: Callable[..., Any], *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword-only parameters of ``builder`` (minus ``exclude``) mapped to their defaults, in signature order."""
    return {
        name: param.default
        for name, param in inspect.signature(builder).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name not in exclude
    }


def check_options(owner: str, options: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    """Raise unless every key of ``options`` is in ``allowed``.

    Raises:
        ValueError: naming ``owner``, the unknown option(s) and the allowed ones.
    """
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        names = ", ".join(map(repr, allowed)) or "none"
        raise ValueError(f"{owner} got unknown option(s) {', '.join(map(repr, unknown))}; allowed options: {names}")
