"""Promoting registered versions (the last step of training): point an alias, `production`
by default, at them. The nightly run resolves `production` when it starts."""

from __future__ import annotations


def promote(registry, versions: dict[str, str], alias: str = "production") -> dict[str, str | None]:
    """Point `alias` of each role at its version; returns what each alias pointed at before."""
    before = {}
    for role, version in versions.items():
        before[role] = registry.aliases().get(role, {}).get(alias)
        registry.set_alias(role, alias, version)
    return before
