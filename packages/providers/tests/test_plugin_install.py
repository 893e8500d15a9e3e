"""The example plugin, built and installed from wheels into a fresh venv, is discovered.

This is what a user does: ``pip install`` better-ccflare and a provider package side by side.
Nothing from the workspace checkout is importable in that venv, so it proves the wheels carry
everything (sources, ``py.typed``, entry-point metadata) and that discovery works end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "examples" / "provider-plugin"

PROBE = """
import json
from better_ccflare.providers import ProviderRegistry
registry = ProviderRegistry()
origin = registry.origin("example-gateway")
print(json.dumps({
    "ids": list(registry.ids()),
    "distribution": origin.distribution,
    "version": origin.version,
    "builtin": origin.builtin,
    "failures": [failure.reason for failure in registry.failures],
    "provider_class": type(registry.get("example-gateway")).__name__,
}))
"""


def uv(*args: str, cwd: Path = ROOT) -> str:
    executable = os.environ.get("UV") or shutil.which("uv")
    assert executable, "uv must be on PATH to build wheels"
    # Keep the workspace's own venv out of the child's view.
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    done = subprocess.run(
        [executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"uv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_example_plugin_wheel_installs_and_registers(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for package in ("better-ccflare-core", "better-ccflare-providers"):
        uv("build", "--package", package, "--no-sources", "--wheel", "--out-dir", str(dist))
    uv("build", str(PLUGIN), "--no-sources", "--wheel", "--out-dir", str(dist))
    wheels = sorted(dist.glob("*.whl"))
    [plugin_wheel] = [w for w in wheels if w.name.startswith("better_ccflare_provider_example-")]

    with zipfile.ZipFile(plugin_wheel) as archive:
        [entry_points] = [
            n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")
        ]
        declared = archive.read(entry_points).decode()
    assert "[better_ccflare.providers]" in declared
    assert declared.count(" = ") == 1

    venv = tmp_path / "venv"
    uv("venv", str(venv), "--python", sys.executable)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    uv("pip", "install", "--python", str(python), *map(str, wheels))

    probe = subprocess.run(
        [str(python), "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    assert report["failures"] == []
    assert report["builtin"] is False
    assert report["distribution"] == "better-ccflare-provider-example"
    assert report["version"] == "0.1.0"
    assert report["provider_class"] == "ExampleGatewayProvider"
    assert report["ids"][-1] == "example-gateway"
    assert "anthropic" in report["ids"]
