"""The one generic cocotb testcase behind ``snnforge run``: any family's job on its core.

``run_job`` reads the job's input arrays from ``options["job_file"]`` (``.npz``) and its
validated options from ``options["job_options"]``, runs it with the generator's
:class:`~snnforge.driver.Driver` over the host port (no idle cycles or back-pressure: a run, not
a test), and writes the outputs and ``counter_<name>`` values to ``options["result_file"]``
(``.npz``) -- the file ``snnforge run`` hands to the user -- and the driver's facts, the simulated
cycles and the wall time to the run's statistics.
"""

from __future__ import annotations

import time

import numpy as np

from ..driver import Job
from ..host import HostDriver
from .tb import bench_test

__all__ = ["run_job", "write_result"]


def write_result(path, result) -> None:
    """Outputs and counters of a :class:`~snnforge.driver.JobResult` as one ``.npz``."""
    np.savez(path, **result.outputs,
             **{f"counter_{name}": np.int64(value) for name, value in result.counters.items()})


@bench_test
async def run_job(tb):
    transport = tb.transport()
    driver = tb.generator.driver(HostDriver(tb.component.regmap, transport), tb.cfg)
    with np.load(tb.option("job_file", None), allow_pickle=False) as arrays:
        job = Job.from_arrays(dict(arrays), tb.option("job_options", {}))
    await tb.reset()
    start, first = time.monotonic(), transport.cycles
    result = await driver.run(job)
    wall = time.monotonic() - start
    write_result(tb.option("result_file", None), result)
    tb.record(facts=result.facts, sim_cycles=transport.cycles - first, wall_seconds=wall,
              items=sum(a.size for a in result.outputs.values()), unit="output values")
