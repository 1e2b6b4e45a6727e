"""How the day's videos are grouped into sampling tasks (`percolate.transforms.sampling`):
tasks of about the same stored bytes, each video in exactly one, the layout kept by Spark."""

from __future__ import annotations

import random

import pytest
from pyspark.sql import functions as F

from percolate.transforms.sampling import assign_tasks, decode_tasks, manifest_frame

MB = 1 << 20


def test_a_day_gets_a_task_per_512_mb_and_at_least_two_per_core():
    assert decode_tasks([100 * MB] * 64, parallelism=2) == 14  # 6,400 MiB: 12.5 tasks, 7 waves of 2
    assert decode_tasks([16 * MB] * 64, parallelism=2) == 4  # 1 GiB on 2 cores: two waves
    assert decode_tasks([16 * MB] * 3, parallelism=2) == 3  # never more tasks than videos
    assert decode_tasks([], parallelism=2) == 1
    assert decode_tasks([None] * 10, parallelism=4) == 8  # sizes unknown: the minimum
    assert decode_tasks([1024 * MB] * 10, parallelism=2) == 10  # 20 tasks' worth, but one video is one task at most
    assert decode_tasks([1024 * MB] * 40, parallelism=2, max_tasks=16) == 16


def test_videos_are_packed_largest_first_into_the_lightest_task():
    rng = random.Random(3)
    sizes = [rng.randint(1, 300) * MB for _ in range(200)]
    tasks = assign_tasks(sizes, 8)
    assert sorted(set(tasks)) == list(range(8))
    loads = [sum(s for s, t in zip(sizes, tasks) if t == k) for k in range(8)]
    # greedy largest-first is within the largest video of the ideal share
    assert max(loads) - min(loads) <= max(sizes)
    assert max(loads) <= sum(sizes) / 8 + max(sizes)
    assert assign_tasks(sizes, 8) == tasks  # the same day, the same layout
    assert assign_tasks([None, 0, None, None], 2).count(0) == 2  # unknown sizes spread evenly


@pytest.mark.spark
def test_each_partition_of_the_manifest_is_one_task(spark):
    sizes = [900, 10, 10, 10, 500, 400, 300, 200, 100, 50]
    rows = [{"call_id": f"c{i}", "user_id": "u", "video_key": f"k{i}", "size_bytes": s} for i, s in enumerate(sizes)]
    df = manifest_frame(spark, rows, tasks=3)
    assert df.rdd.getNumPartitions() == 3
    got = df.withColumn("p", F.spark_partition_id()).collect()
    assert sorted(r.call_id for r in got) == sorted(r["call_id"] for r in rows)  # each video once
    expected = assign_tasks(sizes, 3)
    by_partition = {}
    for r in got:
        by_partition.setdefault(r.p, set()).add(r.call_id)
    by_task = {}
    for i, t in enumerate(expected):
        by_task.setdefault(t, set()).add(f"c{i}")
    assert sorted(map(sorted, by_partition.values())) == sorted(map(sorted, by_task.values()))
    assert set(df.columns) == {"call_id", "user_id", "video_key", "size_bytes"}
    assert manifest_frame(spark, [], tasks=None).count() == 0
