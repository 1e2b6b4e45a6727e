"""`percolate models promote|rollback|history`: moving `production` through the gates.

A challenger pair (prefilter, heavy) is promoted only when every gate of `models.gates`
passes on its recorded evaluation against the champion's (`production`) on the same
held-out days; both evaluations come from `percolate evaluate` (it records every one in the
registry). `--force --reason` promotes past failed gates, and the move says so. Every move
of `production` lands in the registry's alias history; `rollback` walks it back one step.
"""

from __future__ import annotations

import os
from pathlib import Path

from percolate.core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GATES = REPO / "models" / "gates.json"  # the seed use case's requirement


def gates_path(explicit: str | None) -> Path:
    """--gates FILE, else PERCOLATE_GATES, else the shipped models/gates.json."""
    return Path(explicit or os.environ.get("PERCOLATE_GATES") or DEFAULT_GATES)


def refuse_production_move(registry, alias: str, role: str | None = None) -> None:
    """`production` moves through `percolate models promote` (the gates) once it exists; other
    aliases (challenger, tea, ...) move freely."""
    if alias != "production":
        return
    held = registry.aliases()
    if any(held.get(r, {}).get("production") for r in ([role] if role else ["prefilter", "heavy"])):
        raise ValueError("production moves only through `percolate models promote` (the gates, or --force "
                         "--reason); point another alias (e.g. challenger) at the version instead")


def pick_evaluation(registry, prefilter: str, heavy: str, dates: list[str] | None) -> dict | None:
    """The newest recorded evaluation of a pair (on exactly `dates` when given)."""
    for record in registry.evaluations(prefilter, heavy):
        if dates is None or sorted(record["dates"]) == sorted(dates):
            return record
    return None


def promote_pair(settings: Settings, prefilter: str, heavy: str, *, gates_file: str | None = None,
                 force: bool = False, reason: str = "", alias: str = "production",
                 extra_gates: list[dict] | None = None, extra: dict | None = None, apply: bool = True) -> dict:
    """Decide on the challenger pair and, if every gate passes (or `force` with a reason), point
    `alias` of both roles at it. Returns the decision, what moved and the evaluations used.

    `extra_gates` (already decided, e.g. a retrain's training-set gates) must pass too; `extra`
    goes into the result and the report (a retrain's training set, its shadow scoring). With
    `apply` False nothing moves yet: `apply_promotion(settings, out)` moves what was decided
    (a retrain records its decision first)."""
    from models.admission import check_pair
    from models.gates import Gates, decide
    from percolate.io.registry import open_registry

    if force and not reason.strip():
        raise ValueError("--force needs --reason: why the gates are overruled is recorded with the move")
    registry = open_registry(settings)
    pair = {"prefilter": registry.resolve("prefilter", prefilter), "heavy": registry.resolve("heavy", heavy)}
    check_pair(registry.spec("prefilter", pair["prefilter"]), registry.spec("heavy", pair["heavy"]))
    current = {role: registry.aliases().get(role, {}).get(alias) for role in pair}
    if current == pair:
        raise ValueError(f"{alias} already is prefilter {pair['prefilter']}, heavy {pair['heavy']}")
    gates = Gates.from_file(gates_path(gates_file))
    challenger = pick_evaluation(registry, pair["prefilter"], pair["heavy"], None)
    champion = None
    if challenger and all(current.values()):
        champion = pick_evaluation(registry, current["prefilter"], current["heavy"], challenger["dates"])
    if challenger is None:
        decision = {"promote": False, "gates": [], "configured": None,
                    "why": f"no recorded evaluation of prefilter {pair['prefilter']} + heavy {pair['heavy']} "
                           f"(run `percolate evaluate --prefilter-model {pair['prefilter']} --heavy-model "
                           f"{pair['heavy']} --date ...`, and the same days for {alias})"}
    else:
        decision = decide(challenger, champion, gates)
    if extra_gates:
        decision["gates"] = list(extra_gates) + decision["gates"]
        failed = [g["gate"] for g in decision["gates"] if not g["passed"]]
        decision["promote"] = decision["promote"] and not failed
        decision["why"] = "every gate passed" if decision["promote"] else (
            f"failed: {', '.join(failed)}" if failed else decision["why"])
    moved = decision["promote"] or force
    why = ""
    if moved:
        why = (f"gates passed on {', '.join(challenger['dates'])}" if decision["promote"]
               else f"forced past failed gates ({decision['why']}): {reason}")
        if reason and decision["promote"]:
            why += f": {reason}"
    out = {"alias": alias, "from": current, "to": pair, "promoted": moved, "forced": moved and not decision["promote"],
           "decision": decision, "challenger": challenger, "champion": champion, "reason": why, **(extra or {})}
    from workflows.promotion_report import write_promotion_report

    out["report"] = str(write_promotion_report(settings.reports_dir / "promotions", out))
    if apply:
        apply_promotion(settings, out)
    return out


def apply_promotion(settings: Settings, out: dict) -> None:
    """Move the alias as `promote_pair` decided (nothing when it refused)."""
    from models.promote import promote
    from percolate.io.registry import open_registry

    if out["promoted"]:
        promote(open_registry(settings), out["to"], out["alias"], reason=out["reason"], forced=out["forced"])


def format_promotion(out: dict) -> str:
    d = out["decision"]
    lines = [f"  {'pass' if g['passed'] else 'FAIL'}  {g['gate']:<13} {g['why']}" for g in d["gates"]]
    head = (f"promoted: {out['alias']} is now prefilter {out['to']['prefilter']}, heavy {out['to']['heavy']}"
            f"{' (FORCED)' if out['forced'] else ''}" if out["promoted"]
            else f"refused: {out['alias']} stays prefilter {out['from']['prefilter']}, heavy {out['from']['heavy']}")
    return "\n".join([head, f"decision: {d['why']}", *lines, f"report: {out['report']}"])


def format_history(moves: list[dict]) -> str:
    if not moves:
        return "no alias has moved yet"
    return "\n".join(f"{m['at']}  {m['role']:<9} {m['alias']:<11} {m['from'] or '-':>6} -> {m['to']:<6} "
                     f"{m['by']}{'  FORCED' if m['forced'] else ''}{'  rollback' if m['rollback'] else ''}"
                     f"  {m['reason']}" for m in moves)
