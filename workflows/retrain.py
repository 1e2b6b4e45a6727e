"""`percolate retrain`: the weekly retrain, as the `percolate_weekly_retrain` DAG runs it.

As of a date D (point in time: only labels known by D):
1. assemble: `jobs/assemble_training.py` turns the last N weeks' labels into labelled frames;
2. check the training set (`percolate.transforms.training_set`): labels agree with the
   model's confident outputs, no brand dominates, few conflicting labels, no frame from the
   evaluation days, and the `training_data` expectation suite;
3. train the challenger: fine-tune the champion (`production`) on the shipped base data (the
   first days of `percolate train`'s plan, generated if missing) plus the feedback frames,
   recalibrate thresholds and the user-day rule on the calibration days, register (alias
   `challenger`, not production);
4. evaluate champion and challenger end to end on the same held-out days (generated once
   with holdout backgrounds, reused, never trained on), record both;
5. shadow-score the latest published nightly date with the challenger;
6. decide with every gate (`models.gates`: the training set's and the models'), write the
   `model_evaluations` rows and the HTML report, and promote only when every gate passes.

A failed training-set gate stops before training: nothing is registered, production stays.
`--dry-run` stops after step 2 and says what would be trained.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field

import pandas as pd

from percolate.core.layout import TRAINING, check_date
from percolate.core.settings import Settings
from workflows.evaluate import HoldoutDay
from workflows.progress import say
from workflows.training import DayShape, TrainingPlan

_SHIPPED = TrainingPlan()


@dataclass(frozen=True)
class RetrainPlan:
    """What a weekly retrain reads, trains and evaluates on.

    The defaults are the realistic ones: two of the shipped plan's training days as base data,
    its calibration days, and held-out days large enough for the precision gate (at least 385
    true user-brands: 385 of 385 right is the smallest count whose 95% Wilson lower bound
    reaches 99%). `tiny()` is the test's."""

    weeks: int = 4
    seed: int = 11
    base_dates: tuple[str, ...] = _SHIPPED.train_dates[:2]
    base_shape: DayShape = _SHIPPED.train_shape
    calib_dates: tuple[str, ...] = _SHIPPED.calib_dates
    calib_shapes: tuple[DayShape, ...] = _SHIPPED.calib_shapes
    holdout_dates: tuple[str, ...] = tuple(f"2026-02-{d:02d}" for d in range(1, 13))
    holdout: HoldoutDay = field(default_factory=lambda: HoldoutDay(calls=240, min_seconds=10.0, max_seconds=40.0))
    prefilter_epochs: int = 3
    heavy_epochs: int = 3
    # fine-tuning's learning rates: a fifth of the recipes' (models.fit)
    prefilter_lr: float = 2e-3
    heavy_lr: float = 1e-3
    feedback_repeat: int = 3  # feedback frames count this many times against the base data's

    @classmethod
    def tiny(cls, holdout_dates: tuple[str, ...] = ("2026-02-01",)) -> "RetrainPlan":
        """Minutes, not hours: one small base day, one calibration day, small held-out days."""
        return cls(base_dates=("2026-01-01",), base_shape=DayShape(12, 4.0, 6.0, 0.8, 0.5),
                   calib_dates=("2026-01-09",), calib_shapes=(DayShape(8, 6.0, 10.0, 0.8, 0.5),),
                   holdout_dates=holdout_dates,
                   holdout=HoldoutDay(calls=6, min_seconds=16.0, max_seconds=24.0, cup_share=0.9),
                   prefilter_epochs=1, heavy_epochs=1)

    def training_plan(self) -> TrainingPlan:
        """The base and calibration days as a `percolate train` plan (how they are generated)."""
        return TrainingPlan(train_dates=self.base_dates, calib_dates=self.calib_dates, train_shape=self.base_shape,
                            calib_shapes=self.calib_shapes, seed=_SHIPPED.seed)


def assemble(settings: Settings, date: str, weeks: int) -> tuple[pd.DataFrame, dict]:
    """The labelled feedback frames known at `date` (jobs/assemble_training.py) and the counts."""
    from percolate.io.stage import open_stage
    from workflows.launch import spark_submit

    run_id = f"retrain-{date}"
    spark_submit(settings, "assemble_training", ["--date", date, "--run-id", run_id, "--weeks", str(weeks)],
                 f"retrain-assemble-{date}")
    stage = open_stage(settings, run_id)
    return stage.read_pandas(TRAINING, date), stage.read_metrics(TRAINING, date)


def check_training_set(feedback: pd.DataFrame, base: pd.DataFrame, metrics: dict,
                       evaluation_days: list[str], evaluation_calls: set[str]) -> dict:
    """Every figure the training set's gates read (`models.gates.decide_training_set`)."""
    from percolate.transforms.training_set import class_balance, label_agreement, leakage

    labelled = len(feedback) + int(metrics.get("conflicting_frames", 0))
    return {
        "feedback_frames": len(feedback), "base_frames": len(base),
        "feedback_by_source": feedback["source"].value_counts().to_dict() if len(feedback) else {},
        "labels": metrics.get("labels", 0), "labels_by_source": metrics.get("labels_by_source", {}),
        "label_agreement": label_agreement(feedback, int(metrics.get("unmatched_user_day_labels", 0))),
        "class_balance": class_balance(pd.concat([feedback[["label"]], base[["label"]]], ignore_index=True)),
        "conflicts": {"frames": int(metrics.get("conflicting_frames", 0)),
                      "share": metrics.get("conflicting_frames", 0) / labelled if labelled else 0.0},
        "leakage": leakage(feedback.assign(day=feedback["day"].astype(str)), evaluation_days, evaluation_calls),
        "days": metrics.get("days", []),
    }


def base_frames(settings: Settings, plan: RetrainPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(base training frames, calibration frames): generated if missing, sampled by the
    pipeline's own job and labelled from truth, as `percolate train` does."""
    from percolate.io.store import open_store
    from workflows.training import ensure_generated, labelled_frames

    data = settings.synthetic()
    store = open_store(data.store_uri, data.s3_endpoint_url)
    tplan = plan.training_plan()
    days = {}
    for date in tplan.train_dates + tplan.calib_dates:
        shape = tplan.shape(date)
        ensure_generated(store, date, shape.calls, tplan.day_seed(date), "train", shape.min_seconds,
                         shape.max_seconds, shape.cup_share, shape.distractor_share)
        days[date] = labelled_frames(data, store, date)
    base = pd.concat([days[d] for d in tplan.train_dates], ignore_index=True)
    calib = pd.concat([days[d] for d in tplan.calib_dates], ignore_index=True)
    calib["day"] = calib["date"]
    return base, calib


def evaluation_calls(settings: Settings, plan: RetrainPlan) -> set[str]:
    """The call ids of the held-out days (generated first if missing)."""
    from percolate.io.store import open_store
    from synth import load_truth
    from workflows.evaluate import ensure_day

    data = settings.synthetic()
    store = open_store(data.store_uri, data.s3_endpoint_url)
    calls = set()
    for date in plan.holdout_dates:
        ensure_day(data, date, plan.holdout)
        calls |= {c["call_id"] for c in load_truth(store, date)["calls"]}
    return calls


def train_challenger(settings: Settings, date: str, plan: RetrainPlan, champion: dict[str, str],
                     feedback: pd.DataFrame, base: pd.DataFrame, calib: pd.DataFrame, checks: dict) -> dict:
    """Fine-tune the champion into the challenger, calibrate, register as `challenger`."""
    from models.calibrate import calibrate_models
    from models.fit import fit_models, member_init
    from models.promote import promote
    from models.register import model_specs, register_models
    from percolate.core.provenance import code_version
    from percolate.io.registry import open_registry
    from workflows.progress import EpochBars
    from workflows.training import deterministic_torch

    registry = open_registry(settings)
    init = {role: member_init(registry.spec(role, champion[role]), registry.load(role, champion[role]).module)
            for role in ("prefilter", "heavy")}
    classes = list(registry.spec("heavy", champion["heavy"])["class_names"])
    extra = feedback.assign(background="feedback", date=feedback["day"].astype(str),
                            boxes=[[] for _ in range(len(feedback))])
    cols = ["call_id", "frame_index", "ts_ms", "jpeg", "label", "background", "date", "boxes"]
    train = pd.concat([base[cols]] + [extra[cols]] * plan.feedback_repeat, ignore_index=True)
    say(f"fine-tuning prefilter {champion['prefilter']} and heavy {champion['heavy']} on {len(base)} base frames "
        f"and {len(feedback)} feedback frames (x{plan.feedback_repeat})")
    deterministic_torch()
    epochs = EpochBars()
    prefilter, heavy = fit_models(train, classes, seed=plan.seed, prefilter_epochs=plan.prefilter_epochs,
                                  heavy_epochs=plan.heavy_epochs, init=init,
                                  prefilter_options={"lr": plan.prefilter_lr}, heavy_options={"lr": plan.heavy_lr},
                                  progress=epochs)
    epochs.close()
    calibration = calibrate_models(prefilter, heavy, calib, classes, progress=say)
    command = f"percolate retrain --date {date}"
    training = {"command": command, "code_version": code_version(), "seed": plan.seed,
                "dates": list(plan.base_dates + plan.calib_dates), "feedback_days": checks["days"],
                "fine_tuned_from": champion, "plan": asdict(plan), "n_train_frames": len(train),
                "n_feedback_frames": len(feedback), "n_calib_frames": len(calib)}
    versions = register_models(registry, prefilter, heavy, model_specs(prefilter, heavy, calibration, classes,
                                                                       training=training))
    promote(registry, versions, "challenger", reason=f"trained by {command}")
    return versions


def evaluate_pair(settings: Settings, plan: RetrainPlan, pair: dict[str, str]) -> dict:
    """The pair's recorded evaluation on the held-out days, evaluating it if there is none."""
    from models.gates import summarize
    from percolate.io.registry import open_registry
    from workflows.evaluate import evaluate
    from workflows.promotion import pick_evaluation

    registry = open_registry(settings)
    found = pick_evaluation(registry, pair["prefilter"], pair["heavy"], list(plan.holdout_dates))
    if found:
        say(f"prefilter {pair['prefilter']} + heavy {pair['heavy']}: evaluation on the held-out days found")
        return found
    out = evaluate(settings.synthetic(), list(plan.holdout_dates), prefilter=pair["prefilter"], heavy=pair["heavy"],
                   spec=plan.holdout, rerun=True)
    summary = summarize(out)
    registry.record_evaluation(summary)
    return summary


def latest_published(settings: Settings, before: str) -> str | None:
    from workflows.query import read_tables

    rows = read_tables(settings, [f"SELECT max(dt) AS dt FROM pipeline_runs WHERE dt <= '{check_date(before)}'"])[0]
    return rows[0]["dt"] if rows and rows[0]["dt"] else None


def retrain(settings: Settings, date: str, plan: RetrainPlan = RetrainPlan(), *, dry_run: bool = False,
            gates_file: str | None = None, shadow: bool = True) -> dict:
    """The weekly retrain as of `date`; returns the decision and everything it rests on."""
    from models.gates import Gates, decide_training_set
    from models.shipped import resolve
    from percolate.io.registry import open_registry
    from workflows.promotion import apply_promotion, gates_path, promote_pair

    date = check_date(date)
    registry = open_registry(settings)
    champion = {role: resolve(registry, role, "production") for role in ("prefilter", "heavy")}
    gates = Gates.from_file(gates_path(gates_file))
    feedback, metrics = assemble(settings, date, plan.weeks)
    base, calib = base_frames(settings, plan)
    checks = check_training_set(feedback, base, metrics, list(plan.holdout_dates), evaluation_calls(settings, plan))
    data_gates = decide_training_set(checks, gates)
    out = {"date": date, "plan": asdict(plan), "champion": champion, "training_set": checks,
           "training_gates": data_gates, "dry_run": dry_run}
    if dry_run:
        out["decision"] = "dry run: nothing trained"
        return out
    if not all(g["passed"] for g in data_gates):
        failed = [g["gate"] for g in data_gates if not g["passed"]]
        out.update(promoted=False, challenger=None,
                   decision=f"refused before training: the training set failed {', '.join(failed)}; production "
                            f"stays prefilter {champion['prefilter']}, heavy {champion['heavy']}")
        out["report"] = str(write_refusal(settings, out))
        record_model_evaluations(settings, date, out)
        return out
    from workflows.training import check_training_frames

    classes = list(registry.spec("heavy", champion["heavy"])["class_names"])
    check_training_frames(settings.synthetic(), pd.concat([base, feedback.assign(background="feedback")],
                                                          ignore_index=True), date, classes)
    challenger = train_challenger(settings, date, plan, champion, feedback, base, calib, checks)
    out["challenger"] = challenger
    evaluate_pair(settings, plan, champion)
    evaluate_pair(settings, plan, challenger)
    latest = latest_published(settings, date) if shadow else None
    if latest:
        from workflows.shadow import shadow_score

        out["shadow"] = shadow_score(settings, latest, challenger["prefilter"], challenger["heavy"])
    promotion = promote_pair(settings, challenger["prefilter"], challenger["heavy"], gates_file=gates_file,
                             reason=f"weekly retrain as of {date}", extra_gates=data_gates,
                             extra={"training_set": checks, "shadow": out.get("shadow")}, apply=False)
    out.update(promoted=promotion["promoted"], promotion=promotion, report=promotion["report"],
               decision=promotion["decision"]["why"])
    record_model_evaluations(settings, date, out)  # the decision is recorded before anything moves
    apply_promotion(settings, promotion)
    return out


def write_refusal(settings: Settings, out: dict):
    """The report of a retrain refused before training (the training set's gates)."""
    from workflows.promotion_report import write_promotion_report

    return write_promotion_report(settings.reports_dir / "promotions", {
        "alias": "production", "from": out["champion"], "to": {"prefilter": "-", "heavy": "-"}, "promoted": False,
        "forced": False, "decision": {"promote": False, "gates": out["training_gates"], "why": out["decision"]},
        "challenger": None, "champion": None, "training_set": out["training_set"]})


def record_model_evaluations(settings: Settings, date: str, out: dict) -> None:
    """The retrain's evaluations and decision as rows of `model_evaluations` (batch retrain-<date>)."""
    from workflows.launch import spark_submit

    rows = evaluation_rows(date, out)
    folder = settings.reports_dir / "retrain"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"model_evaluations-{date}.json"
    path.write_text(json.dumps(rows, default=str))
    spark_submit(settings, "record_evaluations", ["--date", date, "--run-id", f"retrain-{date}", "--rows", str(path)],
                 f"retrain-record-{date}")


def evaluation_rows(date: str, out: dict) -> list[dict]:
    """One row per model pair the retrain judged (champion, challenger), with the decision."""
    promotion = out.get("promotion") or {}
    gates = (promotion.get("decision") or {}).get("gates") or out["training_gates"]
    rows = []
    for role, pair, ev in (("champion", out["champion"], promotion.get("champion")),
                           ("challenger", out.get("challenger"), promotion.get("challenger"))):
        if not pair:
            continue
        ev = ev or {}
        rows.append({
            "retrain_date": date, "role": role, "prefilter_version": pair["prefilter"],
            "heavy_version": pair["heavy"], "evaluation_dates": json.dumps(ev.get("dates", [])),
            "true_user_brands": ev.get("true_user_brands"), "predicted_user_brands": ev.get("predicted_user_brands"),
            "precision": ev.get("precision"), "precision_low": (ev.get("precision_ci") or [None, None])[0],
            "precision_high": (ev.get("precision_ci") or [None, None])[1], "recall": ev.get("recall"),
            "recall_low": (ev.get("recall_ci") or [None, None])[0], "recall_high": (ev.get("recall_ci") or [None, None])[1],
            "brand_recall": json.dumps(ev.get("brand_recall", {}), sort_keys=True),
            "flops_per_frame": ev.get("flops_per_frame"), "prefilter_pass_rate": ev.get("prefilter_pass_rate"),
            "heavy_run_rate": ev.get("heavy_run_rate"), "model_cpu_s_per_frame": ev.get("model_cpu_s_per_frame"),
            "promoted": bool(out.get("promoted")) and role == "challenger",
            "decision": out["decision"], "gates": json.dumps(gates, default=str), "report": out.get("report"),
            "decided_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()})
    return rows


def format_retrain(out: dict) -> str:
    t = out["training_set"]
    lines = [f"Weekly retrain as of {out['date']}: champion prefilter {out['champion']['prefilter']}, heavy "
             f"{out['champion']['heavy']}",
             f"training set: {t['feedback_frames']} feedback frames from {t['labels']} labels of {len(t['days'])} days "
             f"({', '.join(f'{k} {v}' for k, v in sorted(t['labels_by_source'].items())) or 'none'}), "
             f"{t['base_frames']} base frames"]
    lines += [f"  {'pass' if g['passed'] else 'FAIL'}  {g['gate']:<16} {g['why']}" for g in out["training_gates"]]
    if out.get("challenger"):
        lines.append(f"challenger: prefilter {out['challenger']['prefilter']}, heavy {out['challenger']['heavy']}")
        lines += [f"  {'pass' if g['passed'] else 'FAIL'}  {g['gate']:<16} {g['why']}"
                  for g in out["promotion"]["decision"]["gates"] if g not in out["training_gates"]]
    if out.get("shadow"):
        s = out["shadow"]
        lines.append(f"shadow-scored {s.get('date')}: {len(s.get('disagreements', []))} user-brands where champion and "
                     f"challenger disagree")
    lines.append(("PROMOTED: " if out.get("promoted") else "decision: ") + str(out["decision"]))
    if out.get("report"):
        lines.append(f"report: {out['report']}")
    return "\n".join(lines)


def plan_from_mapping(data: dict | None) -> RetrainPlan:
    """A plan from the DAG's `plan` param: {"preset": "tiny"} and/or fields to override
    (weeks, seed, holdout_dates, prefilter_epochs, heavy_epochs, ...; nested shapes stay)."""
    data = dict(data or {})
    preset = data.pop("preset", "default")
    if preset not in ("default", "tiny"):
        raise ValueError(f"unknown retrain preset {preset!r}: default or tiny")
    holdout_dates = tuple(check_date(d) for d in data.pop("holdout_dates", ()))
    plan = RetrainPlan.tiny(holdout_dates) if preset == "tiny" and holdout_dates else (
        RetrainPlan.tiny() if preset == "tiny" else RetrainPlan())
    if holdout_dates and preset != "tiny":
        data["holdout_dates"] = holdout_dates
    from dataclasses import fields, replace

    simple = {f.name for f in fields(RetrainPlan) if f.type in ("int", "float")}
    unknown = set(data) - simple - {"holdout_dates"}
    if unknown:
        raise ValueError(f"unknown retrain plan fields {sorted(unknown)}; known: {sorted(simple | {'holdout_dates'})}")
    return replace(plan, **data)
