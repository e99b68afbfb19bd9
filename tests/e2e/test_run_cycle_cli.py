"""The front door as a user meets it: exit codes, progress lines, and joining a running cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cycle.config import PROJECT_ROOT

RUN = [sys.executable, str(PROJECT_ROOT / "run_cycle.py")]


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*RUN, *args], capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((PROJECT_ROOT / "configs" / "default.yaml").read_text())
    data["ledger"] = {"path": str(tmp_path / "ledger.sqlite")}
    data["report"] = {"folder": str(tmp_path / "report")}
    data["ray"]["include_dashboard"] = False
    data["ray"]["namespace"] = f"cli-{tmp_path.name[-8:]}"
    data.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_config_exits_2_naming_the_field_and_starts_nothing(tmp_path) -> None:
    path = write_config(tmp_path, risk={"max_drawdown": 3})
    result = cli("--config", str(path), timeout=60)
    assert result.returncode == 2
    assert "risk.max_drawdown: Input should be less than or equal to 1" in result.stderr
    assert "Started a local Ray" not in result.stderr + result.stdout
    assert not (tmp_path / "ledger.sqlite").exists()


def test_unknown_symbol_exits_2_with_the_known_ones(tmp_path) -> None:
    result = cli("--config", str(write_config(tmp_path)), "--symbols", "ETH/BTC,DOGE/BTC", timeout=60)
    assert result.returncode == 2
    assert "symbols: unknown symbol(s) ['DOGE/BTC']" in result.stderr
    assert "ADA/BTC" in result.stderr


def test_bad_strategy_class_exits_2(tmp_path) -> None:
    strategies = [{"name": "x", "class": "actors.strategy.library:Missing", "weight": 1.0}]
    result = cli("--config", str(write_config(tmp_path, strategies=strategies)), timeout=60)
    assert result.returncode == 2
    assert "strategies.x.class: cannot load actors.strategy.library:Missing" in result.stderr


def test_address_auto_joins_a_running_head_and_every_agent_is_a_named_live_actor(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_AUTH_MODE": "disabled"}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--port=0",
         "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={free_port()}", "--disable-usage-stats"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    try:
        for line in head.stdout:
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail("ray start --head exited before the runtime started")
        config = write_config(tmp_path)
        probe = tmp_path / "probe.py"
        probe.write_text(PROBE)
        result = subprocess.run(
            [sys.executable, str(probe), str(config)], capture_output=True, text=True, timeout=300,
            cwd=PROJECT_ROOT, env=env,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        seen = json.loads(next(line for line in result.stdout.splitlines() if line.startswith('{"exit"')))
        assert seen["exit"] == 0
        assert seen["progress_lines"] == 30
        roles = {"coordinator", "feeds", "validation", "conditions", "intelligence", "strategy", "risk",
                 "execution", "adapters", "fees", "failure", "learner", "reporter", "ledger",
                 "broker:paper_fast:0", "broker:paper_fast:1", "broker:paper_cheap:0", "broker:paper_cheap:1"}
        assert roles <= set(seen["alive"]), sorted(roles - set(seen["alive"]))
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


PROBE = '''
import contextlib, io, json, sys, threading, time
import run_cycle
from ray.util.state import list_actors

alive = set()

def watch():
    import ray
    while not ray.is_initialized():
        time.sleep(0.2)
    for _ in range(300):
        try:
            names = {a.name for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000) if a.name}
        except Exception as error:  # noqa: BLE001 - the state API may not be up yet
            print(f"state API not ready: {error}", file=sys.stderr)
            names = set()
        alive.update(names)
        if "coordinator" in names and len(names) >= 18:
            return
        time.sleep(0.5)

watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = run_cycle.main(["--address", "auto", "--config", sys.argv[1], "--cycles", "30"])
watcher.join(timeout=5)
lines = [l for l in out.getvalue().splitlines() if l.startswith("cycle ")]
print(json.dumps({"exit": code, "progress_lines": len(lines), "alive": sorted(alive)}))
'''


def test_cluster_yaml_validates_against_rays_own_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((PROJECT_ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["available_node_types"]["head"]["resources"] == {"fluxtrade_head": 1}
    assert any("pip install" in c and "-e ." in c for c in config["setup_commands"])


def test_cluster_config_variant_pins_the_ledger_to_the_head_resource() -> None:
    from cycle.config import load_config

    config = load_config(PROJECT_ROOT / "configs" / "cluster.yaml")
    for role in ("ledger", "reporter", "coordinator"):
        assert config.agents.options_for(role).resources == {"fluxtrade_head": 0.01}
    cluster = yaml.safe_load((PROJECT_ROOT / "cluster.yaml").read_text())
    assert "fluxtrade_head" in cluster["available_node_types"]["head"]["resources"]


@pytest.fixture(autouse=True)
def _no_stray_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_ctrl_c_finishes_the_cycle_flushes_the_ledger_and_exits_0(tmp_path) -> None:
    config = write_config(tmp_path)
    process = subprocess.Popen(
        [*RUN, "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=PROJECT_ROOT, env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("cycle ") and int(line.split()[1]) >= 80:
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    lines.extend(out.splitlines(keepends=True))
    assert process.returncode == 0, err[-3000:]
    assert "stopping after this cycle" in err
    summary = next(line for line in lines if line.startswith("summary:"))
    cycles = int(summary.split()[1])
    assert 80 <= cycles < 5000
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    open_orders = db.execute(
        "SELECT COUNT(*) FROM orders WHERE status NOT IN ('filled','cancelled','rejected')"
    ).fetchone()[0]
    assert open_orders == 0
    assert db.execute("SELECT MAX(cycle) FROM equity").fetchone()[0] == cycles
    assert (tmp_path / "report" / "summary.md").exists()
