"""Promoting registered versions: point an alias, `production` by default, at them, with the
reason recorded in the registry's alias history. The nightly run resolves `production` when it
starts. Whether a challenger may become `production` is `models.gates`' decision
(`percolate models promote`); this only moves the aliases."""

from __future__ import annotations


def promote(registry, versions: dict[str, str], alias: str = "production", *, reason: str = "",
            forced: bool = False) -> dict[str, str | None]:
    """Point `alias` of each role at its version; returns what each alias pointed at before."""
    before = {}
    for role, version in versions.items():
        before[role] = registry.aliases().get(role, {}).get(alias)
        registry.set_alias(role, alias, version, reason=reason, forced=forced)
    return before
