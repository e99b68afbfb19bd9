"""Notice when a venue changes its API under us, before a field is mis-read.

Vendor clients read missing fields as defaults (ccxt reads a missing ``executedQty`` as ``"0"``), so
a renamed field looks like an order that never filled rather than an error. The monitor compares
each raw response with the shape the adapter was written against, names exactly what changed, logs
it once per change, and flags the broker degraded in the :class:`HealthChecker` so the router
prefers other venues until a human has looked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from actors.adapters.learning.health import HealthChecker


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResponseShape(_Frozen):
    """What one kind of response looked like when the adapter was written.

    Attributes:
        kind: Name of the response kind (``"order"``, ``"ticker"``...).
        required: Fields the adapter reads; a missing one is a breaking change.
        known: Every field the venue sent at the time; anything else is new (often a rename).
        enums: Allowed values of enumerated fields (an unknown order status is breaking).
        version_field: Field that carries the API version, if the venue sends one.
        versions: Versions the adapter understands (only checked with ``version_field``).
    """

    kind: str
    required: frozenset[str]
    known: frozenset[str] = frozenset()
    enums: dict[str, frozenset[str]] = Field(default_factory=dict)
    version_field: str | None = None
    versions: frozenset[str] = frozenset()


class ShapeDiff(_Frozen):
    """How a response differs from its expected shape; ``breaking`` ones must not be parsed."""

    kind: str
    missing: tuple[str, ...] = ()
    new: tuple[str, ...] = ()
    bad_values: tuple[str, ...] = ()
    version: str | None = None
    unknown_version: bool = False

    @property
    def breaking(self) -> bool:
        return bool(self.missing or self.bad_values or self.unknown_version)

    def describe(self) -> str:
        """One line naming what changed, e.g. ``order: missing executedQty; new qtyExecuted``."""
        parts = []
        if self.unknown_version:
            parts.append(f"unexpected version {self.version!r}")
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.bad_values:
            parts.append("unexpected values " + ", ".join(self.bad_values))
        if self.new:
            parts.append("new " + ", ".join(self.new))
        return f"{self.kind}: " + ("; ".join(parts) if parts else "as expected")


def compare_shape(shape: ResponseShape, payload: Mapping[str, Any]) -> ShapeDiff:
    """Compare one response object with its expected shape (pure; no logging)."""
    keys = set(payload)
    bad_values = tuple(
        f"{name}={payload[name]!r}"
        for name, allowed in sorted(shape.enums.items())
        if name in payload and payload[name] not in allowed
    )
    expected = shape.known | shape.required | {shape.version_field}
    version = None
    unknown_version = False
    if shape.version_field is not None:
        raw = payload.get(shape.version_field)
        version = None if raw is None else str(raw)
        unknown_version = version not in shape.versions
    return ShapeDiff(
        kind=shape.kind,
        missing=tuple(sorted(shape.required - keys)),
        new=tuple(sorted(keys - expected)) if shape.known else (),
        bad_values=bad_values,
        version=version,
        unknown_version=unknown_version,
    )


class APIMonitor:
    """Checks responses against expected shapes and degrades brokers whose API changed."""

    def __init__(
        self, shapes: Mapping[str, ResponseShape], health: HealthChecker | None = None
    ) -> None:
        self._shapes = dict(shapes)
        self._health = health
        self._seen: dict[str, dict[str, ShapeDiff]] = {}

    def check(self, broker: str, kind: str, payload: Mapping[str, Any]) -> ShapeDiff:
        """Compare ``payload`` with the shape of ``kind``; flags the broker on a breaking change.

        A kind without a registered shape passes unchanged: the monitor only judges what it was
        told to expect. New fields alone are logged (they are how renames first show up) but do not
        degrade the broker.
        """
        shape = self._shapes.get(kind)
        if shape is None:
            return ShapeDiff(kind=kind)
        diff = compare_shape(shape, payload)
        if diff.missing or diff.new or diff.bad_values or diff.unknown_version:
            self._note(broker, diff)
        return diff

    def changes(self, broker: str) -> list[ShapeDiff]:
        """Every distinct change seen for a broker, oldest first."""
        return list(self._seen.get(broker, {}).values())

    def record(self, broker: str, diff: ShapeDiff) -> None:
        """Take a change another monitor found (a broker in another process): log it once and
        flag the broker on a breaking change, as :meth:`check` would have."""
        self._note(broker, diff)

    def snapshot(self) -> dict[str, Any]:
        return {
            b: [d.model_dump(mode="json") for d in seen.values()] for b, seen in self._seen.items()
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; the health flags are restored with the health checker."""
        self._seen = {
            broker: {(d := ShapeDiff.model_validate(raw)).describe(): d for raw in diffs}
            for broker, diffs in state.items()
        }

    def _note(self, broker: str, diff: ShapeDiff) -> None:
        seen = self._seen.setdefault(broker, {})
        description = diff.describe()
        if description in seen:
            return
        seen[description] = diff
        bound = logger.bind(broker=broker)
        if diff.breaking:
            bound.error("API changed: {}", description)
            if self._health is not None:
                self._health.flag(broker, f"API changed: {description}")
        else:
            bound.warning("API response has new fields: {}", description)
