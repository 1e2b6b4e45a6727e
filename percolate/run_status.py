"""A run's status beyond success: the quarantined share against the trailing days'.

Faults of the infrastructure fail the sampling task, so they never become quarantine rows;
this is the backstop for what still could (a decoder broken by a deployment, a day of files
from a misconfigured recorder): when today's quarantined share of videos is far above the
trailing successful days' (`expectations.quarantine_spike`), the run fails
(`PERCOLATE_ON_QUARANTINE_SPIKE=fail`, the default) or publishes with status `partial` in
`pipeline_runs` and the reason among its warnings (`partial`). The verdict is kept as the
run's `run_status` stage document, which the publish job reads.
"""

from __future__ import annotations

import sys
from collections import Counter

from percolate.budget import trailing_runs
from percolate.core.settings import Settings

RUN_STATUS = "run_status"  # the stage document


class QuarantineSpike(RuntimeError):
    """Far more videos quarantined than on the trailing days, and the policy is to fail."""


def check_quarantine_share(settings: Settings, date: str, run_id: str) -> dict:
    """Compare the run's quarantined share with the trailing days'; record the verdict;
    raise `QuarantineSpike` when it spiked and the policy is `fail`."""
    from expectations import quarantine_spike
    from percolate.handover import load
    from percolate.io.stage import open_stage

    outcomes = load(settings, "video_outcomes", date, run_id)
    videos = len(outcomes)
    quarantined = outcomes[outcomes["status"] != "ok"]
    share = len(quarantined) / videos if videos else 0.0
    history = [(run.get("videos_quarantined") or 0) / run["videos"] for run in trailing_runs(settings, date)
               if run["dt"] != date and run.get("videos")]
    spike = quarantine_spike(share, history)
    reasons = Counter(quarantined["reason"].fillna("?"))
    doc = {"run_id": run_id, "status": "success", "quarantined_share": round(share, 6), "history_days": len(history),
           "reasons": dict(reasons), "warnings": []}
    if spike:
        detail = f"{spike}; reasons: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common(5))
        if settings.on_quarantine_spike == "fail":
            raise QuarantineSpike(f"{detail}. Not published: find the cause and rerun the date, or set "
                                  f"PERCOLATE_ON_QUARANTINE_SPIKE=partial to publish such a day as partial")
        doc.update(status="partial", warnings=[detail])
        print(f"[percolate] run marked partial: {detail}", file=sys.stderr, flush=True)
    open_stage(settings, run_id).write_metrics(RUN_STATUS, date, doc)
    return doc


def read_run_status(stage, date: str) -> dict:
    """The run's verdict (`check_quarantine_share`), or {} for a run that had none."""
    try:
        return stage.read_metrics(RUN_STATUS, date)
    except FileNotFoundError:
        return {}
