"""The doctor's findings: one check, a status, a one-line title, an explanation and a plain fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ssmtui.models import FleetScope, Instance

__all__ = ["SEVERITY", "Diagnosis", "DoctorReport", "Finding", "ScopeReport", "Status"]

#: ``ok`` passed; ``info`` worth knowing; ``unknown`` could not be checked (usually a missing
#: read permission); ``warn`` works but should be fixed; ``fail`` stops sessions.
Status = Literal["ok", "info", "unknown", "warn", "fail"]
SEVERITY: dict[str, int] = {"ok": 0, "info": 1, "unknown": 2, "warn": 3, "fail": 4}


@dataclass(frozen=True)
class Finding:
    """One check's verdict. ``check`` is a stable id (``instance-profile``, ``vpc-endpoints``…)."""

    check: str
    status: Status
    title: str
    detail: str = ""
    fix: str = ""

    @property
    def is_problem(self) -> bool:
        return self.status in ("warn", "fail")

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
        }


def _worst(findings: tuple[Finding, ...]) -> Status:
    return max((f.status for f in findings), key=SEVERITY.__getitem__, default="ok")


@dataclass(frozen=True)
class Diagnosis:
    """Everything found about one instance."""

    instance: Instance
    findings: tuple[Finding, ...]

    @property
    def worst(self) -> Status:
        return _worst(self.findings)

    @property
    def healthy(self) -> bool:
        """A clean bill: nothing to fix (``info`` and ``ok`` only)."""
        return not any(f.is_problem for f in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_problem)

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def to_json(self) -> dict[str, Any]:
        inst = self.instance
        return {
            "instance_id": inst.instance_id,
            "name": inst.display_name,
            "profile": inst.profile,
            "region": inst.region,
            "state": inst.state,
            "ping_status": inst.ping_status,
            "healthy": self.healthy,
            "worst": self.worst,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True)
class ScopeReport:
    """One profile/region: the session preferences, who is asking, and the instances examined."""

    scope: FleetScope
    account_id: str | None = None
    caller_arn: str | None = None
    findings: tuple[Finding, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    online: int = 0
    registered: int = 0
    error: str | None = None
    hint: str | None = None

    @property
    def worst(self) -> Status:
        statuses = [_worst(self.findings), *(d.worst for d in self.diagnoses)]
        if self.error:
            statuses.append("unknown")
        return max(statuses, key=SEVERITY.__getitem__)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.scope.profile,
            "region": self.scope.region,
            "account_id": self.account_id,
            "caller": self.caller_arn,
            "online": self.online,
            "registered": self.registered,
            "error": self.error,
            "hint": self.hint,
            "findings": [f.to_json() for f in self.findings],
            "instances": [d.to_json() for d in self.diagnoses],
        }


@dataclass(frozen=True)
class DoctorReport:
    """What ``ssmtui doctor [TARGET]`` found."""

    scopes: tuple[ScopeReport, ...]
    target: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def diagnoses(self) -> tuple[Diagnosis, ...]:
        return tuple(d for s in self.scopes for d in s.diagnoses)

    @property
    def failed(self) -> bool:
        """Something stops sessions (a ``fail`` finding), or a scope could not be read."""
        return any(s.worst == "fail" or s.error for s in self.scopes)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "failed": self.failed,
            "notes": list(self.notes),
            "scopes": [s.to_json() for s in self.scopes],
        }
