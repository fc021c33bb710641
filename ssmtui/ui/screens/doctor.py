"""The Doctor pane: why instances are missing from Session Manager, and what to do about it.

It shows every scope's session preferences (logging, KMS, timeouts, run-as) and every instance
that needs attention (EC2 instances not registered in SSM, registered ones not online); opened
on a chosen instance (``D`` on a fleet row) it examines that one first, the caller's permission
to start sessions on it included. Each finding has a plain fix. The checks run through a
``runner`` the app builds over its AWS clients; the pane only shows what comes back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ssmtui.doctor.model import SEVERITY, Diagnosis, DoctorReport, Finding, ScopeReport
from ssmtui.doctor.render import GLYPHS
from ssmtui.errors import SsmtuiError, one_line
from ssmtui.models import Instance

__all__ = ["DoctorRunner", "DoctorScreen", "finding_text"]

#: ``target or None -> report``: what the app gives the pane to run the checks.
DoctorRunner = Callable[[str | None], Awaitable[DoctorReport]]

STYLES = {
    "ok": "green",
    "info": "cyan",
    "unknown": "yellow",
    "warn": "yellow",
    "fail": "bold red",
}
COLUMNS = ("", "What", "Verdict", "State", "Scope", "Id")


def _glyph(status: str) -> Text:
    return Text(GLYPHS.get(status, ("?", "?"))[0], style=STYLES.get(status, ""))


def finding_text(findings: tuple[Finding, ...], heading: str) -> Text:
    """The findings as the details panel shows them: glyph + title, explanation, fix."""
    out = Text(heading + "\n\n", style="bold")
    for f in findings:
        out.append_text(_glyph(f.status))
        out.append(f"  {f.title}\n")
        if f.detail and f.status != "ok":
            out.append(f"  {f.detail}\n", style="dim")
        if f.fix and f.status != "ok":
            out.append("  fix: ", style="bold")
            out.append(f"{f.fix}\n")
        out.append("\n")
    return out


class DoctorScreen(Screen[None]):
    """Scopes' preferences and instances needing attention, with findings and fixes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back", id="doctor.close"),
        Binding("r,ctrl+r", "reload", "Re-check", id="doctor.reload"),
        Binding("e", "examine", "Examine alone", id="doctor.examine"),
    ]

    def __init__(self, runner: DoctorRunner, chosen: Instance | None = None) -> None:
        super().__init__()
        self.runner = runner
        self.chosen = chosen
        #: Row key -> (heading, findings) shown in the details panel.
        self.rows: dict[str, tuple[str, tuple[Finding, ...]]] = {}
        #: Row key -> instance id (instance rows only), for "examine".
        self.instance_rows: dict[str, Diagnosis] = {}
        self.report: DoctorReport | None = None
        self.chosen_report: DoctorReport | None = None
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Checking…", id="doctor-status")
        with Horizontal(id="doctor-body"):
            yield DataTable(id="doctor-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="doctor-details")
        yield Footer()

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#doctor-table", DataTable)

    @property
    def details(self) -> Static:
        return self.query_one("#doctor-details", Static)

    @property
    def status_text(self) -> str:
        return str(self.query_one("#doctor-status", Static).content)

    @property
    def details_text(self) -> str:
        return str(self.details.content)

    def on_mount(self) -> None:
        self.title = "Doctor"
        self.table.add_columns(*COLUMNS)
        self.table.focus()
        self.load()

    # ------------------------------------------------------------------ checks

    def _set_status(self, text: str) -> None:
        self.query_one("#doctor-status", Static).update(one_line(text))

    @work(group="doctor", exclusive=True, exit_on_error=False, name="doctor-load")
    async def load(self) -> None:
        """Run the checks (the chosen instance first, then the fleet)."""
        what = f"{self.chosen.display_name} and the fleet" if self.chosen else "the fleet"
        self._set_status(f"Checking {what}…")
        try:
            if self.chosen is not None:
                self.chosen_report = await self.runner(self.chosen.instance_id)
                self._show()
            self.report = await self.runner(None)
        except SsmtuiError as err:
            self._set_status("; ".join(err.lines()))
            return
        except Exception as exc:  # never let a check crash the pane
            self._set_status(f"doctor failed: {type(exc).__name__}: {exc}")
            return
        self.loads += 1
        self._show()

    def _show(self) -> None:
        table = self.table
        keep = table.cursor_row
        table.clear()
        self.rows.clear()
        self.instance_rows.clear()
        chosen_id = self.chosen.instance_id if self.chosen else None
        for report in (self.chosen_report, self.report):
            if report is None:
                continue
            for scope in report.scopes:
                if report is self.report:
                    self._add_scope(scope)
                for d in scope.diagnoses:
                    if report is self.report and d.instance.instance_id == chosen_id:
                        continue  # shown from the chosen report, with its permission check
                    self._add_instance(d)
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        self._update_details()
        self._set_status(self._summary())

    def _add_scope(self, scope: ScopeReport) -> None:
        key = f"scope:{scope.scope}"
        heading = f"Session preferences — {scope.scope}"
        findings = scope.findings
        if scope.error:
            err = Finding(
                "scope", "unknown", f"could not read {scope.scope}", scope.error, scope.hint or ""
            )
            findings = (err,)
        if scope.caller_arn:
            heading += f"\nas {scope.caller_arn}"
        worst = max((f.status for f in findings), key=SEVERITY.__getitem__, default="ok")
        online = f"{scope.online}/{scope.registered} online" if scope.registered else ""
        self.rows[key] = (heading, findings)
        self.table.add_row(
            _glyph(worst), "session preferences", "", online, str(scope.scope), "", key=key
        )

    def _add_instance(self, d: Diagnosis) -> None:
        inst = d.instance
        key = f"inst:{inst.scope}:{inst.instance_id}"
        if key in self.rows:
            return
        state = inst.ping_status if inst.registered else "not registered"
        if inst.state and inst.state != "running":
            state = f"{inst.state}, {state}"
        verdict = "clean bill" if d.healthy else f"{len(d.problems)} to fix"
        heading = f"{inst.display_name} ({inst.instance_id}, {inst.scope})"
        self.rows[key] = (heading, d.findings)
        self.instance_rows[key] = d
        self.table.add_row(
            _glyph(d.worst),
            inst.display_name,
            Text(verdict, style=STYLES[d.worst] if not d.healthy else "green"),
            state,
            str(inst.scope),
            inst.instance_id,
            key=key,
        )

    def _summary(self) -> str:
        diagnoses = [d for d in self.instance_rows.values()]
        if not diagnoses:
            return "Every EC2 instance is registered and every registered instance is online."
        bad = sum(1 for d in diagnoses if not d.healthy)
        return f"{len(diagnoses)} instance(s) examined, {bad} with problems to fix · r re-check"

    # ------------------------------------------------------------------ details

    def selected_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _update_details(self) -> None:
        key = self.selected_key()
        if key is None or key not in self.rows:
            self.details.update("")
            return
        heading, findings = self.rows[key]
        self.details.update(finding_text(findings, heading))

    @on(DataTable.RowHighlighted, "#doctor-table")
    def _highlighted(self) -> None:
        self._update_details()

    @on(DataTable.RowSelected, "#doctor-table")
    def _selected(self) -> None:
        self.action_examine()

    # ------------------------------------------------------------------ actions

    def action_close(self) -> None:
        self.workers.cancel_group(self, "doctor")
        self.app.pop_screen()

    def action_reload(self) -> None:
        self.load()

    def action_examine(self) -> None:
        """Examine the selected instance on its own (adds the permission check)."""
        key = self.selected_key()
        d = self.instance_rows.get(key or "")
        if d is None or (self.chosen and d.instance.instance_id == self.chosen.instance_id):
            return
        self.chosen = d.instance
        self.chosen_report = None
        self.load()
