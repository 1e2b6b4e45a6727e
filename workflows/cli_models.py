"""`percolate models ...`: the model registry (list, register your own, aliases) and moving
`production` (promote through the gates, rollback, history), and shadow-scoring a challenger on a
published date. Thin commands over `models.registry`, `workflows.promotion` and `workflows.shadow`;
`workflows.cli` adds them to its parser."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from percolate.core.layout import check_date
from percolate.core.settings import Settings


def emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    """One JSON document on stdout with --json, else the text (every command prints this way)."""
    if args.json:
        print(json.dumps(payload, default=str, sort_keys=True))
    else:
        print(text)


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.registry import open_registry

    registry = open_registry(settings)
    models = {role: registry.list(role) for role in ("prefilter", "heavy")}
    text = "\n".join(f"{role} {m['version']} threshold={m.get('threshold')} aliases={m.get('aliases', [])}"
                     for role, ms in models.items() for m in ms) or "(no models registered)"
    emit(args, models, text)
    return 0


def _spec_from_args(args: argparse.Namespace) -> dict:
    """The spec of a model brought from a file: the --spec JSON, then the flags on top."""
    spec: dict = {}
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
        if not isinstance(spec, dict):
            raise ValueError(f"{args.spec}: want a JSON object")
    inp = dict(spec.get("input") or {})
    if args.input_size:
        m = re.fullmatch(r"(\d+)x(\d+)", args.input_size)
        if not m:
            raise ValueError(f"--input-size wants WIDTHxHEIGHT, got {args.input_size!r}")
        inp["width"], inp["height"] = int(m.group(1)), int(m.group(2))
    for name in ("mean", "std"):
        value = getattr(args, name)
        if value:
            parts = [float(v) for v in value.split(",")]
            if len(parts) != 3:
                raise ValueError(f"--{name} wants three comma-separated numbers")
            inp[name] = parts
    if args.crop is not None:
        inp["crop"] = args.crop
    if not {"width", "height"} <= set(inp):
        raise ValueError("give the input size: --input-size WxH or \"input\" in --spec")
    spec["input"] = inp
    if args.classes:
        spec["class_names"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    if args.role == "prefilter":
        spec.setdefault("class_names", ["positive"])
    if not spec.get("class_names"):
        raise ValueError("give the class names: --classes a,b,c or \"class_names\" in --spec")
    if args.threshold is not None:
        spec["threshold"] = args.threshold
    if args.min_frames is not None or args.min_score is not None:
        agg = dict(spec.get("aggregation") or {})
        agg["min_frames"] = args.min_frames if args.min_frames is not None else agg.get("min_frames", 1)
        agg["min_score"] = args.min_score if args.min_score is not None else agg.get(
            "min_score", spec.get("threshold", 0.5))
        spec["aggregation"] = agg
    if args.outputs:
        spec["output"] = args.outputs
    spec.setdefault("source_file", Path(args.file).name)
    return spec


def cmd_models_register(args: argparse.Namespace, settings: Settings) -> int:
    """Register a TorchScript file with its spec; it then runs like a built-in model, once its smoke
    test (several batch sizes, in a child process under limits: models.smoke) passes."""
    from percolate.io.registry import open_registry

    registry = open_registry(settings)
    if not Path(args.file).is_file():
        raise FileNotFoundError(f"no such file: {args.file}")
    if args.alias:
        from workflows.promotion import refuse_production_move

        refuse_production_move(registry, args.alias, args.role)
    limits = {} if args.smoke_time_limit_s is None else {"time_limit_s": args.smoke_time_limit_s}
    version = registry.register(args.role, None, _spec_from_args(args), torchscript_path=args.file, **limits)
    if args.alias:
        registry.set_alias(args.role, args.alias, version)
    spec = registry.spec(args.role, version)
    emit(args, {"role": args.role, "version": version, "alias": args.alias, "spec": spec},
         f"registered {args.role} {version}" + (f" as {args.alias}" if args.alias else "")
         + f": classes {', '.join(spec['class_names'])}; threshold {spec['threshold']}")
    return 0


def cmd_models_alias(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.registry import open_registry
    from workflows.promotion import refuse_production_move

    registry = open_registry(settings)
    version = registry.resolve(args.role, args.version)
    refuse_production_move(registry, args.alias, args.role)
    registry.set_alias(args.role, args.alias, version, reason=args.reason)
    emit(args, {"role": args.role, "alias": args.alias, "version": version},
         f"{args.role} {args.alias} -> {version}")
    return 0


def cmd_models_promote(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.promotion import format_promotion, promote_pair

    out = promote_pair(settings, args.prefilter, args.heavy, gates_file=args.gates, force=args.force,
                       reason=args.reason)
    emit(args, out, format_promotion(out))
    return 0 if out["promoted"] else 3


def cmd_models_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.registry import open_registry

    before, after = open_registry(settings).rollback(args.role, args.alias, reason=args.reason)
    emit(args, {"role": args.role, "alias": args.alias, "from": before, "to": after},
         f"{args.role} {args.alias}: {before} -> {after} (rolled back; the next run uses {after})")
    return 0


def cmd_models_history(args: argparse.Namespace, settings: Settings) -> int:
    from percolate.io.registry import open_registry
    from workflows.promotion import format_history

    moves = open_registry(settings).alias_history(args.role, args.alias)
    emit(args, moves, format_history(moves))
    return 0


def cmd_models_shadow(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.shadow import format_shadow, shadow_score

    out = shadow_score(settings, args.date, args.prefilter_model, args.heavy_model)
    emit(args, out, format_shadow(out))
    return 0


def add_models_commands(sub) -> None:
    """The `models` command group, on the CLI's subparsers."""
    models = sub.add_parser("models", help="The model registry.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    p = models_sub.add_parser("list", help="List registered versions and aliases.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_list)

    p = models_sub.add_parser(
        "register", help="Register your own TorchScript model (prefilter or heavy) with a small spec.",
        description="Register a TorchScript file. The spec (a JSON file and/or flags) gives the input size, "
                    "normalisation, class names and thresholds; the model must output logits (or probabilities "
                    "with --outputs probabilities): one per frame for a prefilter, none + one per class for a "
                    "heavy model. A TorchScript file is code: it is only run in a child process (no credentials, "
                    "memory and time limits) at batch sizes 1, 3, 8, 16 and 64, and its sha256 is checked at every "
                    "load. Input sides are bounded to 1024 px (589824 pixels), classes to 1000.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--role", required=True, choices=["prefilter", "heavy"])
    p.add_argument("--file", required=True, help="TorchScript file (torch.jit.save)")
    p.add_argument("--spec", help="JSON: {input: {width, height, mean, std, crop}, class_names, threshold, "
                                  "aggregation: {min_frames, min_score}, output}")
    p.add_argument("--input-size", help="WIDTHxHEIGHT the model expects")
    p.add_argument("--mean", help="per-channel mean on the [0, 1] scale, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", help="per-channel std on the [0, 1] scale")
    p.add_argument("--crop", type=float, default=None,
                   help="heavy only: see a square crop of this fraction of the frame height around the "
                        "prefilter's peak instead of the whole frame; a run refuses to pair it with a prefilter "
                        "that gives no location map")
    p.add_argument("--classes", help="comma-separated class names (heavy: the labels after 'none')")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold on the model's score")
    p.add_argument("--min-frames", type=int, default=None, help="heavy: frames a user-day needs for a detection")
    p.add_argument("--min-score", type=float, default=None, help="heavy: score those frames need")
    p.add_argument("--outputs", choices=["logits", "probabilities"], default=None)
    p.add_argument("--alias", default=None, help="also point this alias (e.g. challenger) at the new version")
    p.add_argument("--smoke-time-limit-s", type=float, default=None,
                   help="wall seconds the model may take for all smoke-test batch sizes once loaded (default 120)")
    p.set_defaults(func=cmd_models_register)

    p = models_sub.add_parser("alias", help="Point an alias (production, challenger, ...) at a version.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--role", required=True, choices=["prefilter", "heavy"])
    p.add_argument("--alias", required=True)
    p.add_argument("--version", required=True, help="a version (v0003) or another alias")
    p.add_argument("--reason", default="", help="why: kept in the alias history")
    p.set_defaults(func=cmd_models_alias)

    p = models_sub.add_parser(
        "promote", help="Make a challenger pair production if every gate passes (models/gates.json).",
        description="Compare the pair's recorded evaluation (percolate evaluate) with production's on the same "
                    "held-out days and promote only when every gate passes; exit 3 when refused. --force "
                    "--reason promotes past failed gates and records it.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--prefilter", default="challenger", help="version or alias (default challenger)")
    p.add_argument("--heavy", default="challenger", help="version or alias (default challenger)")
    p.add_argument("--gates", default=None, help="gates JSON (default PERCOLATE_GATES or models/gates.json)")
    p.add_argument("--force", action="store_true", help="promote even if a gate fails (needs --reason)")
    p.add_argument("--reason", default="", help="why: kept in the alias history")
    p.set_defaults(func=cmd_models_promote)

    p = models_sub.add_parser(
        "shadow", help="Shadow-score a published date with a challenger pair; show where it disagrees.",
        description="Score the frames the date's published run sampled with the pair, into the batch "
                    "<prefilter>+<heavy> of shadow_frame_predictions and shadow_user_brand_daily (rerunning "
                    "replaces it), and compare with the published user_brand_daily: user-brands confirmed by "
                    "one side only, frames passed and detections by each.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--date", required=True, type=check_date, help="a published date, YYYY-MM-DD")
    p.add_argument("--prefilter-model", default="challenger", help="version or alias (default challenger)")
    p.add_argument("--heavy-model", default="challenger", help="version or alias (default challenger)")
    p.set_defaults(func=cmd_models_shadow)

    p = models_sub.add_parser("rollback", help="Move an alias (production) back one step in its history.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--role", required=True, choices=["prefilter", "heavy"])
    p.add_argument("--alias", default="production")
    p.add_argument("--reason", default="", help="why: kept in the alias history")
    p.set_defaults(func=cmd_models_rollback)

    p = models_sub.add_parser("history", help="Every alias move: when, who, from, to, why.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--role", choices=["prefilter", "heavy"], default=None)
    p.add_argument("--alias", default=None)
    p.set_defaults(func=cmd_models_history)
