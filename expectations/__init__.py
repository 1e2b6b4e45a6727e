"""Data validation for Percolate hand-overs: GX suites as code, validation, drift checks.

Importing this package is cheap: Great Expectations is imported only when a suite is
built or a validation runs.
"""

from expectations.drift import DriftReport, check_drift, quarantine_spike
from expectations.suites import CRITICAL, SUITES, WARNING, build_suite
from expectations.validate import (
    ValidationFailed,
    ValidationReport,
    clear_context_cache,
    get_context,
    validate,
)

__all__ = [
    "CRITICAL",
    "SUITES",
    "WARNING",
    "DriftReport",
    "ValidationFailed",
    "ValidationReport",
    "build_suite",
    "check_drift",
    "quarantine_spike",
    "clear_context_cache",
    "get_context",
    "validate",
]
