"""A family is its own folders plus one registry entry: the example family in
``tests/example_family`` (a generator, a driver and a bench, registered through
``SNNFORGE_FAMILIES`` -- the registry line of a family kept outside this repository) is served by
``snnforge list``, ``gen``, ``sim`` and ``run`` with no edit anywhere else; and its broken
producer shows that the stream-contract check of every bench can fail."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SNNFORGE = str(Path(sys.executable).parent / "snnforge")


def run_cli(*args, build):
    """The command line with the example family registered (its results kept apart)."""
    env = {**os.environ, "SNNFORGE_FAMILIES": "example_family.generator",
           "SNNFORGE_BUILD": str(build),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([SNNFORGE, *args], capture_output=True, text=True, env=env)


def test_an_outside_family_is_served_by_every_command(tmp_path):
    snnforge = functools.partial(run_cli, build=tmp_path / "build")
    listed = snnforge("list")
    assert listed.returncode == 0, listed.stderr
    assert "example_acc" in listed.stdout and "2..32" in listed.stdout and "loas" in listed.stdout

    made = snnforge("gen", "example_acc", "-p", "width=6", "-o", str(tmp_path / "gen"))
    assert made.returncode == 0, made.stderr
    manifest = json.loads((tmp_path / "gen" / "example_acc.json").read_text())
    assert manifest["params"] == {"width": 6, "depth": 4}
    assert [r["name"] for r in manifest["regmap"]["registers"]] == ["offset", "count"]

    sim = snnforge("sim", "example_acc", "-p", "width=6")
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert "1 passed" in sim.stdout

    x = np.array([0, 1, 5, 62, 63, 17, 40, 63, 0])
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    ran = snnforge("run", "example_acc", "-p", "width=6", "--in", f"x={tmp_path / 'x.npy'}",
                   "-O", "offset=5", "-o", str(out))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with np.load(out) as data:
        assert data["y"].tolist() == ((x + 5) % 64).tolist()
        assert int(data["counter_count"]) == len(x)

    bad = snnforge("run", "example_acc", "-p", "width=6", "--in", f"x={tmp_path / 'x.npy'}",
                   "-O", "offset=64", "-o", str(tmp_path / "bad.npz"))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "snnforge: error: job: option offset=64 is out of range 0..63"]
    assert not (tmp_path / "bad.npz").exists()


def test_the_stream_contract_check_fails_a_broken_producer(tmp_path):
    snnforge = functools.partial(run_cli, build=tmp_path / "build")
    good = snnforge("sim", "example_pulse")
    assert good.returncode == 0, good.stdout + good.stderr
    # The sink is ready one cycle in three: beat 4 is offered in cycle 9 and not taken.
    dropped = snnforge("sim", "example_pulse", "-O", "mode=drop")
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert ("stream contract broken:\n  stream o: beat 4 at cycle 10 after reset: valid fell "
            "before the transfer (payload 0x4 offered while ready was low)") in dropped.stdout
    changed = snnforge("sim", "example_pulse", "-O", "mode=change")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "stream o: beat" in changed.stdout
    assert "the payload changed before the transfer" in changed.stdout
