"""Run a hand-over suite against a pandas DataFrame with a file-based GX context.

`validate` returns a `ValidationReport`; the caller raises `ValidationFailed` when a
critical expectation failed. Results and Data Docs
are written under `gx_root` (`<gx_root>/gx/uncommitted/data_docs/local_site/`).
Great Expectations is imported lazily; contexts are cached per `gx_root` per process.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from expectations.suites import CRITICAL, WARNING, build_suite

if TYPE_CHECKING:
    import pandas as pd

DATASOURCE_NAME = "percolate"
BATCH_DEFINITION_NAME = "whole_dataframe"
MAX_EXAMPLES = 5
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}

_LOCK = threading.RLock()
_CONTEXTS: dict[str, Any] = {}
# (root, suite name) -> (fingerprint of the suite's expectations, checkpoint)
_CHECKPOINTS: dict[tuple[str, str], tuple[str, Any]] = {}


@dataclass
class ValidationReport:
    """Outcome of one validation: `success` is False iff a critical expectation failed."""

    suite: str
    success: bool
    critical_failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evaluated: int = 0
    docs_path: str | None = None
    result_docs_path: str | None = None
    run_name: str | None = None
    rows: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for the run summary."""
        state = "passed" if self.success else "FAILED"
        return (
            f"{self.suite}: {state} ({self.evaluated} expectations on {self.rows} rows, "
            f"{len(self.critical_failures)} critical, {len(self.warnings)} warnings)"
        )


class ValidationFailed(Exception):
    """A critical expectation failed; `report` holds the full `ValidationReport`."""

    def __init__(self, report: ValidationReport):
        self.report = report
        lines = "; ".join(report.critical_failures)
        super().__init__(
            f"validation of {report.suite!r} failed "
            f"({len(report.critical_failures)} critical): {lines}"
        )


# ---- GX context handling ---------------------------------------------------------------


def get_context(gx_root: Path | str) -> Any:
    """File-based GX context under `gx_root` (created if needed), cached per process."""
    key = str(Path(gx_root).resolve())
    with _LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            Path(key).mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ctx = gx.get_context(mode="file", project_root_dir=key)
                pb = ctx.variables.progress_bars
                if pb is None or pb.get("globally", True) or pb.get("metric_calculations", True):
                    ctx.variables.progress_bars = ProgressBarsConfig(
                        globally=False, metric_calculations=False
                    )
                    ctx.variables.save()
            _CONTEXTS[key] = ctx
        return ctx


def clear_context_cache() -> None:
    """Forget cached contexts and checkpoints (e.g. after deleting a gx_root)."""
    with _LOCK:
        _CONTEXTS.clear()
        _CHECKPOINTS.clear()


def _fingerprint(suite: Any) -> str:
    configs = [e.configuration.to_json_dict() for e in suite.expectations]
    for c in configs:
        c.pop("id", None)
    return json.dumps(configs, sort_keys=True, default=str)


def _batch_definition(ctx: Any, asset_name: str) -> Any:
    sources = ctx.data_sources.all()
    ds = sources.get(DATASOURCE_NAME)
    if ds is None:
        ds = ctx.data_sources.add_pandas(DATASOURCE_NAME)
    try:
        asset = ds.get_asset(asset_name)
    except LookupError:
        asset = ds.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)


def _checkpoint(ctx: Any, root: str, suite: Any) -> Any:
    """Add or update suite, validation definition and checkpoint (once per suite content)."""
    import great_expectations as gx

    name = suite.name
    fp = _fingerprint(suite)
    cached = _CHECKPOINTS.get((root, name))
    if cached is not None and cached[0] == fp:
        return cached[1]
    bd = _batch_definition(ctx, name)
    suite = ctx.suites.add_or_update(suite)
    vd = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=bd, suite=suite)
    )
    cp = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[vd],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format=RESULT_FORMAT,
        )
    )
    _CHECKPOINTS[(root, name)] = (fp, cp)
    return cp


@contextlib.contextmanager
def _root_lock(root: str):
    """Exclusive lock on `<root>/.validate.lock` so processes sharing a root do not race."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    with open(Path(root) / ".validate.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _url_to_path(url: str | None) -> str | None:
    if not url:
        return None
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url


# ---- messages ----------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        try:
            v = v.item()
        except (ValueError, TypeError):
            pass
    if isinstance(v, dict):
        return tuple(_plain(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    return v


def _fmt_num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _fmt_range(kw: dict) -> str | None:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is None and hi is None:
        return None
    smin, smax = kw.get("strict_min"), kw.get("strict_max")
    if hi is None:
        return f"{'>' if smin else '>='} {_fmt_num(lo)}"
    if lo is None:
        return f"{'<' if smax else '<='} {_fmt_num(hi)}"
    text = f"{_fmt_num(lo)}..{_fmt_num(hi)}"
    if smin or smax:
        text += " (strict)"
    return text


def _fmt_condition(cond: Any) -> str:
    if isinstance(cond, dict) and cond.get("type") == "comparison":
        col = cond.get("column", {})
        col = col.get("name") if isinstance(col, dict) else col
        return f"{col} {cond.get('operator')} {cond.get('parameter')!r}"
    return str(cond)


def _short_list(values: list, limit: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... +{len(values) - limit}" if len(values) > limit else ""
    return "{" + shown + more + "}"


def describe_expectation(cfg: Any) -> str:
    """`expect_x(column, args)` from an expectation configuration."""
    kw = dict(cfg.kwargs)
    parts: list[str] = []
    if kw.get("column") is not None:
        parts.append(str(kw["column"]))
    if kw.get("column_list"):
        parts.append("(" + ", ".join(kw["column_list"]) + ")")
    if kw.get("column_A") is not None and kw.get("column_B") is not None:
        parts.append(f"{kw['column_A']}, {kw['column_B']}")
    rng = _fmt_range(kw)
    if rng:
        parts.append(rng)
    if kw.get("value_set") is not None:
        parts.append("in " + _short_list(list(kw["value_set"])))
    if kw.get("type_list") is not None:
        parts.append("types " + _short_list(list(kw["type_list"]), limit=4))
    if kw.get("row_condition"):
        parts.append("where " + _fmt_condition(kw["row_condition"]))
    return f"{cfg.type}({', '.join(parts)})"


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if isinstance(info, dict) and info.get("raised_exception"):
        return str(info.get("exception_message"))
    if isinstance(info, dict):
        for v in info.values():
            if isinstance(v, dict) and v.get("raised_exception"):
                return str(v.get("exception_message"))
    return None


def _examples(result: dict) -> list:
    counts = result.get("partial_unexpected_counts")
    if counts:
        values = [_plain(c.get("value")) for c in counts]
    else:
        values = []
        for v in result.get("partial_unexpected_list") or []:
            v = _plain(v)
            if v not in values:
                values.append(v)
    return values[:MAX_EXAMPLES]


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def describe_failure(evr: Any) -> str:
    """Human-readable message for one failed expectation validation result."""
    cfg = evr.expectation_config
    head = describe_expectation(cfg)
    err = _exception_message(evr.exception_info)
    if err:
        return f"{head} could not be evaluated: {err}"
    result = evr.result or {}
    if "unexpected_count" in result:
        n, total = result.get("unexpected_count"), result.get("element_count")
        msg = f"{head} failed: {n} of {total} rows"
        examples = _examples(result)
        if examples and all(_is_missing(v) for v in examples):
            idx = list(result.get("partial_unexpected_index_list") or [])[:MAX_EXAMPLES]
            idx = [_plain(i) for i in idx]
            return msg + (f" are null, e.g. at row index {idx}" if idx else " are null")
        if examples:
            msg += f", e.g. {list(examples)!r}"
        return msg
    if "observed_value" in result:
        return f"{head} failed: observed {_plain(result['observed_value'])!r}"
    if cfg.type == "expect_column_to_exist":
        return f"{head} failed: column is missing"
    return f"{head} failed"


# ---- validation ----------------------------------------------------------------------------


def validate(
    df: pd.DataFrame,
    suite_name: str,
    *,
    gx_root: Path | str,
    run_name: str,
    **suite_params: Any,
) -> ValidationReport:
    """Validate `df` against the registered suite `suite_name`; never raises on failures.

    `suite_params` go to the suite builder (e.g. `class_names=[...]`,
    `reason_codes=[...]`). Results and Data Docs land under `gx_root`.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    t0 = time.perf_counter()
    suite = build_suite(suite_name, **suite_params)
    root = str(Path(gx_root).resolve())
    with _LOCK, _root_lock(root), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = get_context(root)
        cp = _checkpoint(ctx, root, suite)
        run_id = RunIdentifier(run_name=run_name, run_time=_dt.datetime.now(_dt.timezone.utc))
        result = cp.run(batch_parameters={"dataframe": df}, run_id=run_id)

        critical: list[str] = []
        warns: list[str] = []
        evaluated = 0
        result_docs = None
        for vri, suite_result in result.run_results.items():
            for evr in suite_result.results:
                evaluated += 1
                if evr.success:
                    continue
                severity = (evr.expectation_config.meta or {}).get("severity", CRITICAL)
                (warns if severity == WARNING else critical).append(describe_failure(evr))
            try:
                urls = ctx.get_docs_sites_urls(resource_identifier=vri)
                result_docs = _url_to_path(urls[0]["site_url"]) if urls else None
            except Exception:  # noqa: BLE001 - docs links are best effort
                result_docs = None
        try:
            urls = ctx.get_docs_sites_urls()
            docs = _url_to_path(urls[0]["site_url"]) if urls else None
        except Exception:  # noqa: BLE001
            docs = None

    return ValidationReport(
        suite=suite.name,
        success=not critical,
        critical_failures=critical,
        warnings=warns,
        evaluated=evaluated,
        docs_path=docs,
        result_docs_path=result_docs,
        run_name=run_name,
        rows=int(len(df)),
        seconds=round(time.perf_counter() - t0, 3),
    )


__all__ = [
    "CRITICAL",
    "WARNING",
    "ValidationFailed",
    "ValidationReport",
    "clear_context_cache",
    "describe_failure",
    "get_context",
    "validate",
]
