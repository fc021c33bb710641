"""``ssmtui doctor``: why an instance is missing from Session Manager, or why a session won't
start — the facts (:mod:`ssmtui.aws.doctor`), the rules (:mod:`.rules`) and the report."""

from ssmtui.doctor.model import Diagnosis, DoctorReport, Finding, ScopeReport
from ssmtui.doctor.run import run_doctor

__all__ = ["Diagnosis", "DoctorReport", "Finding", "ScopeReport", "run_doctor"]
