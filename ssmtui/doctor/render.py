"""Plain-text rendering of a :class:`~ssmtui.doctor.model.DoctorReport` (``ssmtui doctor``)."""

from __future__ import annotations

import textwrap

from ssmtui.doctor.model import Diagnosis, DoctorReport, Finding, ScopeReport

__all__ = ["GLYPHS", "render_report"]

#: Status -> (unicode glyph, ASCII glyph).
GLYPHS: dict[str, tuple[str, str]] = {
    "ok": ("✓", "ok"),
    "info": ("·", "--"),
    "unknown": ("?", "??"),
    "warn": ("!", "!!"),
    "fail": ("✗", "XX"),
}


def _glyph(status: str, unicode: bool) -> str:
    pair = GLYPHS.get(status, ("?", "??"))
    return pair[0] if unicode else pair[1]


def _wrap(text: str, indent: str, width: int) -> list[str]:
    return textwrap.wrap(
        text,
        width=max(40, width),
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def _finding(f: Finding, indent: str, unicode: bool, width: int) -> list[str]:
    lines = _wrap(f"{_glyph(f.status, unicode)} {f.title}", indent, width)
    if f.detail and f.status != "ok":
        lines += _wrap(f.detail, indent + "    ", width)
    if f.fix and f.status != "ok":
        lines += _wrap(f"fix: {f.fix}", indent + "    ", width)
    return lines


def _instance_head(d: Diagnosis, unicode: bool) -> str:
    inst = d.instance
    state = inst.state or ("hybrid" if inst.is_hybrid else "?")
    reg = inst.ping_status if inst.registered else "not registered"
    verdict = "clean bill" if d.healthy else f"{len(d.problems)} to fix"
    return (
        f"  {_glyph(d.worst, unicode)} {inst.display_name}  {inst.instance_id}  "
        f"{state}, {reg}  — {verdict}"
    )


def _scope(s: ScopeReport, unicode: bool, width: int, show_ok: bool) -> list[str]:
    who = f"  as {s.caller_arn}" if s.caller_arn else ""
    acct = f"  account {s.account_id}" if s.account_id else ""
    lines = [f"{s.scope.profile}/{s.scope.region}{acct}{who}"]
    if s.error:
        lines += _wrap(
            f"{_glyph('unknown', unicode)} could not read this scope: {s.error}", "  ", width
        )
        if s.hint:
            lines += _wrap(f"hint: {s.hint}", "      ", width)
        return lines
    if s.registered:
        lines.append(f"  {s.online} of {s.registered} registered instances online")
    if s.findings:
        lines.append("  session preferences:")
        for f in s.findings:
            lines += _finding(f, "    ", unicode, width)
    if not s.diagnoses:
        return lines
    for d in s.diagnoses:
        lines.append(_instance_head(d, unicode))
        shown = [f for f in d.findings if show_ok or f.status != "ok"]
        for f in shown:
            lines += _finding(f, "      ", unicode, width)
        passed = len(d.findings) - len(shown)
        if passed:
            lines.append(f"      {_glyph('ok', unicode)} {passed} more checks passed")
    return lines


def render_report(
    report: DoctorReport, *, unicode: bool = True, width: int = 100, show_ok: bool | None = None
) -> str:
    """The report as text. ``show_ok`` (default: only for a single target) lists passed checks."""
    if show_ok is None:
        show_ok = report.target is not None
    out: list[str] = []
    for scope in report.scopes:
        if out:
            out.append("")
        out += _scope(scope, unicode, width, show_ok)
    diagnoses = report.diagnoses
    bad = sum(1 for d in diagnoses if not d.healthy)
    out.append("")
    if report.target is not None:
        if diagnoses and diagnoses[0].healthy:
            out.append(f"{report.target}: clean bill of health")
        elif diagnoses:
            out.append(f"{report.target}: {len(diagnoses[0].problems)} problem(s) to fix")
    else:
        scopes = len(report.scopes)
        if not diagnoses:
            out.append(
                f"{scopes} scope(s): every EC2 instance is registered and every registered "
                "instance is online"
            )
        else:
            out.append(
                f"{scopes} scope(s): {len(diagnoses)} instance(s) need attention, "
                f"{bad} with problems to fix"
            )
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"
