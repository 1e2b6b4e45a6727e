"""Expectation suites, as code, for every hand-over between pipeline stages.

Each `build_*_suite` function returns a fresh `gx.ExpectationSuite` named after the
hand-over. Every expectation carries `meta={"severity": "critical" | "warning"}`:
critical failures stop the run before publish, warnings are only reported.
Runtime parameters (the hand-over's columns, the model's class list, the quarantine
reason codes) are function arguments given by the caller, never defined here: the
columns come from the one definition of each table (`percolate.core.tables`). Great
Expectations is imported lazily inside the builders.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

CRITICAL = "critical"
WARNING = "warning"

INT_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
]  # fmt: skip
BOOL_TYPES = ["bool", "boolean"]
DECODE_MODES = ("keyframes", "nonref", "all")  # percolate.video.limits.DECODE_MODES
VIDEO_STATUSES = ("ok", "quarantined")
FRAME_KEY = ("call_id", "frame_index")
PROVENANCE_COLUMNS = (
    "run_id",
    "prefilter_version",
    "heavy_version",
    "prefilter_threshold",
    "heavy_threshold",
)


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def _meta(severity: str) -> dict[str, str]:
    if severity not in (CRITICAL, WARNING):
        raise ValueError(f"severity must be {CRITICAL!r} or {WARNING!r}, got {severity!r}")
    return {"severity": severity}


def _suite(name: str, expectations: list) -> Any:
    import great_expectations as gx

    return gx.ExpectationSuite(name=name, expectations=expectations)


def _class_list(class_names: Iterable[str] | None, what: str) -> list[str]:
    if class_names is None:
        raise ValueError(f"{what} suite needs class_names (the model's class list)")
    names = [str(c) for c in class_names]
    if not names:
        raise ValueError(f"{what} suite needs a non-empty class_names list")
    return names


# ---- small building blocks -------------------------------------------------------------


def _exists(columns: Iterable[str]) -> list:
    gxe = _gxe()
    return [gxe.ExpectColumnToExist(column=c, meta=_meta(CRITICAL)) for c in columns]


def _not_null(column: str, severity: str = CRITICAL) -> Any:
    return _gxe().ExpectColumnValuesToNotBeNull(column=column, meta=_meta(severity))


def _unique(column: str, severity: str = CRITICAL) -> Any:
    return _gxe().ExpectColumnValuesToBeUnique(column=column, meta=_meta(severity))


def _compound_unique(columns: Sequence[str], severity: str = CRITICAL) -> Any:
    return _gxe().ExpectCompoundColumnsToBeUnique(column_list=list(columns), meta=_meta(severity))


def _between(
    column: str,
    min_value: float | None = None,
    max_value: float | None = None,
    severity: str = CRITICAL,
    **kw: Any,
) -> Any:
    return _gxe().ExpectColumnValuesToBeBetween(
        column=column, min_value=min_value, max_value=max_value, meta=_meta(severity), **kw
    )


def _in_set(column: str, values: Iterable[Any], severity: str = CRITICAL, **kw: Any) -> Any:
    return _gxe().ExpectColumnValuesToBeInSet(
        column=column, value_set=list(values), meta=_meta(severity), **kw
    )


def _types(column: str, type_list: list[str], severity: str = CRITICAL) -> Any:
    return _gxe().ExpectColumnValuesToBeInTypeList(
        column=column, type_list=list(type_list), meta=_meta(severity)
    )


def _rows_at_least(n: int, severity: str = WARNING) -> Any:
    return _gxe().ExpectTableRowCountToBeBetween(min_value=n, max_value=None, meta=_meta(severity))


def _frame_key_block() -> list:
    """call_id / frame_index / ts_ms: present, non-null, non-negative ints, key unique."""
    return [
        _not_null("call_id"),
        _not_null("frame_index"),
        _types("frame_index", INT_TYPES),
        _between("frame_index", 0, None),
        _not_null("ts_ms"),
        _types("ts_ms", INT_TYPES),
        _between("ts_ms", 0, None),
        _compound_unique(FRAME_KEY),
    ]


def _score(column: str) -> list:
    return [_not_null(column), _between(column, 0, 1)]


# ---- suites ----------------------------------------------------------------------------


def build_manifest_suite(*, columns: Sequence[str], name: str = "manifest") -> Any:
    """Manifest of calls to process: one row per call with its stored video."""
    return _suite(
        name,
        [
            *_exists(columns),
            _rows_at_least(1, WARNING),
            _not_null("call_id"),
            _unique("call_id"),
            _not_null("user_id", WARNING),
            _not_null("video_key"),
            _unique("video_key"),
            _not_null("size_bytes"),
            _types("size_bytes", INT_TYPES),
            _between("size_bytes", 0, None, CRITICAL),
            _between("size_bytes", 0, None, WARNING, strict_min=True),
        ],
    )


def build_sampled_frames_suite(*, columns: Sequence[str], name: str = "sampled_frames") -> Any:
    """Sampled frames (pixels dropped, `jpeg_bytes` = encoded size)."""
    return _suite(
        name,
        [
            *_exists(columns),
            _rows_at_least(1, WARNING),
            *_frame_key_block(),
            _not_null("user_id", WARNING),
            _not_null("width"),
            _between("width", 16, 4096),
            _not_null("height"),
            _between("height", 16, 4096),
            _not_null("jpeg_bytes"),
            _between("jpeg_bytes", 0, None, strict_min=True),
            _not_null("decode_mode"),
            _in_set("decode_mode", DECODE_MODES),
        ],
    )


def build_video_outcomes_suite(
    *, columns: Sequence[str], reason_codes: Iterable[str], name: str = "video_outcomes",
    manifest_call_ids: Sequence[str] | None = None,
) -> Any:
    """Per-video outcome of sampling: ok, or quarantined with a known reason code; with
    `manifest_call_ids`, the accounting: one outcome for each manifest row, and no other
    (the row count, the ids' uniqueness and their set, all critical)."""
    from great_expectations.expectations.row_conditions import Column

    quarantined = Column("status") == "quarantined"
    accounting = []
    if manifest_call_ids is not None:
        ids = sorted({str(c) for c in manifest_call_ids})
        accounting = [
            _gxe().ExpectTableRowCountToEqual(value=len(ids), meta=_meta(CRITICAL)),
            _in_set("call_id", ids),
        ]
    return _suite(
        name,
        [
            *accounting,
            *_exists(columns),
            _not_null("call_id"),
            _unique("call_id"),
            _not_null("status"),
            _in_set("status", VIDEO_STATUSES),
            _gxe().ExpectColumnValuesToNotBeNull(
                column="reason", row_condition=quarantined, meta=_meta(CRITICAL)
            ),
            _in_set("reason", list(reason_codes), row_condition=quarantined),
            _between("duration_s", 0, None),
        ],
    )


def build_prefilter_scores_suite(*, columns: Sequence[str], name: str = "prefilter_scores") -> Any:
    """Prefilter score per sampled frame and whether it passed the threshold."""
    return _suite(
        name,
        [
            *_exists(columns),
            *_frame_key_block(),
            _not_null("user_id", WARNING),
            *_score("prefilter_score"),
            _not_null("passed"),
            _types("passed", BOOL_TYPES),
        ],
    )


def _heavy_block(columns: Sequence[str], class_names: list[str]) -> list:
    return [
        *_exists(columns),
        *_frame_key_block(),
        _not_null("label"),
        _in_set("label", class_names),
        *_score("score"),
        *_score("none_score"),
        _not_null("is_detection"),
        _types("is_detection", BOOL_TYPES),
        _reuses_an_earlier_frame(),
    ]


def _reuses_an_earlier_frame() -> Any:
    """A frame that reuses the heavy output of an unchanged input points at an earlier frame."""
    return _gxe().ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="frame_index", column_B="reused_from", or_equal=False,
        ignore_row_if="either_value_is_missing", meta=_meta(CRITICAL))


def build_heavy_predictions_suite(
    *, columns: Sequence[str], class_names: Iterable[str] | None = None, name: str = "heavy_predictions"
) -> Any:
    """Heavy-model prediction per prefilter-passed frame; label must be a model class."""
    classes = _class_list(class_names, name)
    return _suite(name, [*_heavy_block(columns, classes), _not_null("user_id", WARNING)])


def build_frame_predictions_suite(
    *, columns: Sequence[str], class_names: Iterable[str] | None = None, name: str = "frame_predictions"
) -> Any:
    """Rows about to be published: heavy predictions plus provenance, attributable to a user."""
    classes = _class_list(class_names, name)
    return _suite(
        name,
        [
            *_heavy_block(columns, classes),
            _not_null("user_id"),
            *[_not_null(c) for c in PROVENANCE_COLUMNS],
            _between("prefilter_threshold", 0, 1),
            _between("heavy_threshold", 0, 1),
        ],
    )


def build_user_brand_daily_suite(
    *,
    columns: Sequence[str],
    class_names: Iterable[str] | None = None,
    key_columns: Sequence[str] = ("user_id", "brand"),
    name: str = "user_brand_daily",
) -> Any:
    """Daily per-user brand aggregate; `key_columns` may add e.g. a day column."""
    classes = _class_list(class_names, name)
    return _suite(
        name,
        [
            *_exists(list(dict.fromkeys([*columns, *key_columns]))),
            _not_null("user_id"),
            _not_null("brand"),
            _in_set("brand", classes),
            _not_null("frames"),
            _between("frames", 1, None),
            *_score("max_score"),
            _compound_unique(list(dict.fromkeys(key_columns))),
        ],
    )


def build_training_data_suite(
    *,
    class_names: Iterable[str] | None = None,
    min_label_share: float = 0.01,
    max_label_share: float = 0.90,
    name: str = "training_data",
) -> Any:
    """Training frames: label in the class list or null; labelled share within bounds."""
    classes = _class_list(class_names, name)
    return _suite(
        name,
        [
            *_exists(["call_id", "frame_index", "label", "jpeg_bytes"]),
            _not_null("call_id"),
            _not_null("frame_index"),
            _compound_unique(FRAME_KEY),
            _in_set("label", classes),
            _gxe().ExpectColumnProportionOfNonNullValuesToBeBetween(
                column="label",
                min_value=min_label_share,
                max_value=max_label_share,
                meta=_meta(WARNING),
            ),
            _not_null("jpeg_bytes"),
            _between("jpeg_bytes", 0, None, strict_min=True),
        ],
    )


def build_labels_suite(
    *,
    columns: Sequence[str],
    class_names: Iterable[str] | None = None,
    verdicts: Iterable[str],
    sources: Iterable[str],
    name: str = "labels",
) -> Any:
    """Labels about to be written: known brands, verdicts and sources, one label per subject
    and brand, a date for every day, frame labels with a non-negative index."""
    classes = _class_list(class_names, name)
    gxe = _gxe()
    return _suite(
        name,
        [
            *_exists(columns),
            *[_not_null(c) for c in ("label_id", "subject", "user_id", "day", "brand", "verdict", "source",
                                     "known_at")],
            _unique("label_id"),
            _compound_unique(["subject", "brand"]),
            _in_set("brand", classes),
            _in_set("verdict", verdicts),
            _in_set("source", sources),
            gxe.ExpectColumnValuesToMatchRegex(column="day", regex=r"^\d{4}-\d{2}-\d{2}$", meta=_meta(CRITICAL)),
            _between("frame_index", 0, None),
        ],
    )


def build_audit_frames_suite(
    *,
    columns: Sequence[str],
    class_names: Iterable[str] | None = None,
    strata: Iterable[str],
    name: str = "audit_frames",
) -> Any:
    """The night's audit sample: known strata, a probability in (0, 1] and a stratum size for
    every frame (the recall estimate divides by both), each frame once, heavy labels known."""
    classes = _class_list(class_names, name)
    return _suite(
        name,
        [
            *_exists(columns),
            *[_not_null(c) for c in ("call_id", "frame_index", "stratum", "passed", "sampling_probability",
                                     "stratum_frames")],
            _compound_unique(["call_id", "frame_index"]),
            _in_set("stratum", strata),
            _between("sampling_probability", 0, 1, strict_min=True),
            _between("stratum_frames", 1, None),
            _in_set("label", classes),
        ],
    )


SUITES: dict[str, Callable[..., Any]] = {
    "manifest": build_manifest_suite,
    "sampled_frames": build_sampled_frames_suite,
    "video_outcomes": build_video_outcomes_suite,
    "prefilter_scores": build_prefilter_scores_suite,
    "heavy_predictions": build_heavy_predictions_suite,
    "frame_predictions": build_frame_predictions_suite,
    "user_brand_daily": build_user_brand_daily_suite,
    "training_data": build_training_data_suite,
    "labels": build_labels_suite,
    "audit_frames": build_audit_frames_suite,
}


def build_suite(suite_name: str, **params: Any) -> Any:
    """Build the registered suite `suite_name` with its runtime parameters."""
    try:
        builder = SUITES[suite_name]
    except KeyError:
        raise KeyError(f"unknown suite {suite_name!r}; known: {sorted(SUITES)}") from None
    return builder(**params)
