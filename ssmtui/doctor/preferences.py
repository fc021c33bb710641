"""The doctor's reading of a region's Session Manager preferences (the SSM-SessionManagerRunShell
document): logging to S3 / CloudWatch, KMS encryption, idle timeout, maximum duration, run-as."""

from __future__ import annotations

from ssmtui.aws.doctor import PreferencesFacts
from ssmtui.doctor.model import Finding

__all__ = ["preference_findings"]


def preference_findings(prefs: PreferencesFacts | None, region: str) -> list[Finding]:
    """The region's Session Manager preferences: logging, KMS, timeouts, run-as."""
    if prefs is None:
        return []
    if prefs.unknown is not None:
        return [
            Finding(
                "preferences",
                "unknown",
                "could not read the Session Manager preferences",
                f"{prefs.unknown.call}: {prefs.unknown.reason}",
                "needs ssm:GetDocument on SSM-SessionManagerRunShell",
            )
        ]
    if not prefs.exists:
        return [
            Finding(
                "logging",
                "warn",
                f"no Session Manager preferences in {region}: sessions are not logged",
                "Defaults apply: no S3 or CloudWatch session logs, no KMS encryption, "
                "20 min idle timeout.",
                "Systems Manager console → Session Manager → Preferences → Edit (or create the "
                "SSM-SessionManagerRunShell document)",
            )
        ]
    inputs = prefs.inputs
    found: list[Finding] = []
    s3 = str(inputs.get("s3BucketName") or "")
    cw = str(inputs.get("cloudWatchLogGroupName") or "")
    if s3 or cw:
        where = []
        if s3:
            where.append(f"S3 s3://{s3}/{inputs.get('s3KeyPrefix') or ''}")
        if cw:
            stream = " (streaming)" if inputs.get("cloudWatchStreamingEnabled") else ""
            where.append(f"CloudWatch {cw}{stream}")
        found.append(
            Finding(
                "logging",
                "ok",
                "session output is logged to " + " and ".join(where),
                "Shell sessions only: port-forwarding and SSH sessions carry no logged output.",
            )
        )
    else:
        found.append(
            Finding(
                "logging",
                "warn",
                "sessions are not logged (no S3 bucket, no CloudWatch log group)",
                "Session Manager still records who started which session (CloudTrail), but not "
                "what was typed or shown.",
                "set s3BucketName and/or cloudWatchLogGroupName in the Session Manager preferences",
            )
        )
    kms = str(inputs.get("kmsKeyId") or "")
    if kms:
        found.append(
            Finding(
                "kms",
                "ok",
                f"session data encrypted with KMS key {kms}",
                "You need kms:GenerateDataKey on it; the instance role needs kms:Decrypt.",
            )
        )
    else:
        found.append(
            Finding(
                "kms",
                "info",
                "session data is not KMS-encrypted (TLS only)",
                fix="set kmsKeyId in the Session Manager preferences",
            )
        )
    idle = str(inputs.get("idleSessionTimeout") or "20")
    longest = str(inputs.get("maxSessionDuration") or "")
    found.append(
        Finding(
            "timeouts",
            "info",
            f"idle sessions end after {idle} min; "
            + (f"every session ends after {longest} min" if longest else "no maximum duration"),
        )
    )
    if str(inputs.get("runAsEnabled")).lower() == "true":
        user = str(inputs.get("runAsDefaultUser") or "?")
        found.append(
            Finding(
                "run-as",
                "info",
                f"Linux sessions run as {user} (run-as on; an SSMSessionRunAs tag on your "
                "principal overrides it)",
            )
        )
    else:
        found.append(Finding("run-as", "info", "Linux sessions run as ssm-user (run-as off)"))
    return found
