"""Candidates for the meta-agent: every strategy class of the library times a grid of parameters.

The grid is built from each class's own ``param_ranges`` and the types of its ``Params`` fields,
so a strategy added to the library joins the search without touching this module. Each class gets
about the same number of candidates (``per_class``): a class with three parameters gets fewer
points per axis than one with two, instead of dominating the search by sheer count. Wide positive
ranges (high/low >= 4, windows and lookbacks) are spaced geometrically, where a step of one bar
matters at 5 and not at 150; narrow ones linearly.

A candidate is keyed by the hash of its class path and parameters, which keys its rows in every
result table.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import json
import math
import pkgutil
from typing import Any

import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, ValidationError

from actors.strategy.library import Strategy
from cycle.config import StrategyConfig

log = logger.bind(agent_id="tuning")

STRATEGY_PACKAGES = ("actors.strategy",)
"""Packages whose modules are searched for Strategy classes."""


class Candidate(BaseModel):
    """One strategy class with one parameter set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_path: str
    params: dict[str, Any]

    @property
    def class_name(self) -> str:
        return self.class_path.split(":")[1]

    def config_hash(self) -> str:
        """A short stable hash of class path and parameters; keys result rows."""
        text = json.dumps({"class": self.class_path, "params": self.params}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items()))
        return f"{self.class_name}({args})"

    def strategy_config(self, name: str | None = None) -> StrategyConfig:
        """The live config of this candidate, as the strategy engine loads it."""
        return StrategyConfig(
            name=name or f"{self.class_name.lower()}_{self.config_hash()[:6]}",
            class_path=self.class_path,
            params=self.params,
        )

    def strategy_class(self) -> type[Strategy]:
        module, name = self.class_path.split(":")
        return getattr(importlib.import_module(module), name)

    def build(self) -> Strategy:
        return self.strategy_class()(self.class_name.lower(), self.params)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def class_path(cls: type[Strategy]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def strategy_classes(packages: tuple[str, ...] = STRATEGY_PACKAGES) -> list[type[Strategy]]:
    """Concrete Strategy classes with parameter ranges, found in ``packages``.

    A module that fails to import is skipped with a warning: a colleague's half-written strategy
    must not stop the search over the others.
    """
    for package_name in packages:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            try:
                importlib.import_module(info.name)
            except Exception as error:  # noqa: BLE001 - user code: skip what does not import
                log.warning("skipping {}: {}: {}", info.name, type(error).__name__, error)
    found: dict[str, type[Strategy]] = {}
    pending = list(Strategy.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if inspect.isabstract(cls) or not getattr(cls, "param_ranges", None):
            continue
        if not cls.__module__.startswith(packages):
            continue
        found[class_path(cls)] = cls
    return [found[key] for key in sorted(found)]


def axis(field_type: Any, low: float, high: float, points: int) -> list[Any]:
    """Grid values of one parameter: ints rounded and unique, floats to 6 significant digits."""
    geometric = low > 0 and high / low >= 4
    values = np.geomspace(low, high, points) if geometric else np.linspace(low, high, points)
    if field_type is int:
        return sorted({int(round(v)) for v in values})
    return [float(f"{v:.6g}") for v in values]


def grid_for(
    cls: type[Strategy], per_class: int, max_warmup: int | None = None
) -> list[Candidate]:
    """About ``per_class`` valid candidates of one class (invalid combinations are dropped).

    Args:
        cls: The strategy class.
        per_class: Target number of grid points before invalid ones (fast >= slow...) are dropped.
        max_warmup: Drop candidates needing more history than the live engine keeps.
    """
    names = sorted(cls.param_ranges)
    points = max(2, math.ceil(per_class ** (1 / len(names)) - 1e-9))
    fields = cls.Params.model_fields
    axes = []
    for name in names:
        low, high = cls.param_ranges[name]
        axes.append(axis(fields[name].annotation, float(low), float(high), points))
    out = []
    for values in itertools.product(*axes):
        params = dict(zip(names, values, strict=True))
        try:
            strategy = cls(cls.__name__.lower(), params)
        except ValidationError:
            continue
        if max_warmup is not None and strategy.warmup > max_warmup:
            continue
        out.append(Candidate(class_path=class_path(cls), params=params))
    return out


def generate(
    per_class: int = 600,
    classes: list[type[Strategy]] | None = None,
    max_warmup: int | None = None,
) -> list[Candidate]:
    """The candidate list: a grid per strategy class, classes in a stable order."""
    classes = classes if classes is not None else strategy_classes()
    candidates: list[Candidate] = []
    for cls in classes:
        try:
            grid = grid_for(cls, per_class, max_warmup)
        except Exception as error:  # noqa: BLE001 - user code: skip a class whose grid fails
            log.warning("no grid for {}: {}: {}", class_path(cls), type(error).__name__, error)
            continue
        log.info("{}: {} candidates", class_path(cls), len(grid))
        candidates.extend(grid)
    return candidates
