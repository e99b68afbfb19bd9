"""Shared fixtures: one local Ray session per test run, and configs that write under tmp_path."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from cycle.config import PROJECT_ROOT, FluxtradeConfig, load_config

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


def make_config(tmp_path: Path, **overrides: Any) -> FluxtradeConfig:
    """The default config, writing its ledger and report under ``tmp_path``, in its own namespace."""
    base = {
        "ledger": {"path": str(tmp_path / "ledger.sqlite")},
        "report": {"folder": str(tmp_path / "report")},
        "ray": {"namespace": f"test-{uuid.uuid4().hex[:8]}", "include_dashboard": False},
    }
    base.update(overrides)
    return load_config(DEFAULT_CONFIG, base)


@pytest.fixture(scope="session")
def ray_session():
    """The one local Ray of the test run (2 CPUs, no dashboard)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}},
    )
    yield ray
    ray.shutdown()
