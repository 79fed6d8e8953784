"""The preflight checklist's items: what one check found and, for a failing one, the fix.

A `Fix` is the exact SQL that repairs an item and the `Requirement` a role must meet to run it;
`AppliedFix` is what running it gave. Kept apart from `preflight.py` (which builds the items) so
that the inspection, whose `Capabilities` decide which fixes a role may apply, needs no import of
the checklist itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
# What the role applying a fix must be allowed to do. `restart` and `manual` are never applied
# automatically: one needs a server restart, the other a human decision (which key, which slot).
Requirement = Literal[
    "grant_replication",
    "grant_select",
    "table_owner",
    "create_publication",
    "alter_publication",
    "restart",
    "manual",
]


@dataclass(frozen=True, slots=True)
class Fix:
    sql: tuple[str, ...]
    requires: Requirement
    tables: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CheckItem:
    key: str  # stable id, e.g. "replica_identity:public.claims"
    title: str
    status: Status
    detail: str
    fix: Fix | None = None

    def to_json(self, fixable: bool | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "title": self.title, "status": self.status}
        data["detail"] = self.detail
        if self.fix is not None:
            data["fix"] = {"sql": list(self.fix.sql), "requires": self.fix.requires, "note": self.fix.note}
            if fixable is not None:
                data["fix"]["applicable_by_role"] = fixable
        return data


@dataclass(frozen=True, slots=True)
class AppliedFix:
    key: str
    sql: list[str]
    ok: bool
    error: str | None = None
