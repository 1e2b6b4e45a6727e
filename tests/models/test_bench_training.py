"""benchmarks/bench_training.py: one Spark task per ensemble member gives the driver's models."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_training.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.spark
def test_one_task_per_model_trains_the_drivers_members(spark):
    """At the same torch thread count, the weights that come back from the tasks are the
    driver's, bit for bit (training is deterministic), and load into the architecture."""
    bench = _bench()
    labels, images = bench.labelled_frames(24)
    driver, _ = bench.in_driver(labels, images, members=2, epochs=1, threads=1)
    tasks, worker_cpu = bench.one_task_per_model(labels, images, members=2, epochs=1, spark=spark)
    assert worker_cpu > 0
    for (d, d_loss), (t, t_loss) in zip(driver, tasks, strict=True):
        d_state, t_state = bench.from_bytes(d).state_dict(), bench.from_bytes(t).state_dict()
        assert d_state.keys() == t_state.keys()
        assert all((d_state[k] == t_state[k]).all() for k in d_state)
        assert d_loss == t_loss
    members = [bench.from_bytes(w).state_dict() for w, _ in tasks]
    assert any((members[0][k] != members[1][k]).any() for k in members[0])  # seeds 0 and 1 differ
