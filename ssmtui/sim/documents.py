"""Session documents and Session Manager preferences, as the simulated SSM service knows them.

The contents mirror the AWS-owned documents (``sessionType``, ``parameters`` with ``default`` and
``allowedPattern``, ``properties``) closely enough that clients and the simulated agent can
interpret them the same way as the real ones.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_DOCUMENT",
    "DEFAULT_PREFERENCES",
    "SESSION_DOCUMENTS",
    "document_content",
    "normalize_document_name",
    "preferences_document",
    "resolve_parameters",
    "session_type",
]

#: The document used when StartSession names none: the Session Manager preferences document.
DEFAULT_DOCUMENT = "SSM-SessionManagerRunShell"

_PORT_TAIL = (
    r"[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
)
_PORT = r"^([1-9]|" + _PORT_TAIL
_LOCAL_PORT = r"^([0-9]|" + _PORT_TAIL
_HOST = r"^[^&|;$><`\\']*$"


def _port_param(desc: str, default: str, pattern: str = _PORT) -> dict[str, Any]:
    return {"type": "String", "description": desc, "allowedPattern": pattern, "default": default}


def _commands_properties() -> dict[str, Any]:
    body = {"commands": "{{ command }}", "runAsElevated": False}
    return {"windows": dict(body), "linux": dict(body), "macos": dict(body)}


#: Session documents accepted by StartSession (besides the preferences document), by name.
SESSION_DOCUMENTS: dict[str, dict[str, Any]] = {
    "AWS-StartPortForwardingSession": {
        "schemaVersion": "1.0",
        "description": "Document to start port forwarding session over Session Manager",
        "sessionType": "Port",
        "parameters": {
            "portNumber": _port_param("(Optional) Port number of the server on the instance", "80"),
            "localPortNumber": _port_param(
                "(Optional) Port number on local machine to forward traffic to. "
                "An open port is chosen at run-time if not provided",
                "0",
                _LOCAL_PORT,
            ),
        },
        "properties": {
            "portNumber": "{{ portNumber }}",
            "type": "LocalPortForwarding",
            "localPortNumber": "{{ localPortNumber }}",
        },
    },
    "AWS-StartPortForwardingSessionToRemoteHost": {
        "schemaVersion": "1.0",
        "description": "Document to start port forwarding session over Session Manager to a "
        "remote host",
        "sessionType": "Port",
        "parameters": {
            "host": {
                "type": "String",
                "description": "(Required) The hostname or IP address of the destination server",
                "allowedPattern": _HOST,
            },
            "portNumber": _port_param("(Optional) Port number of the server on the host", "80"),
            "localPortNumber": _port_param(
                "(Optional) Port number on local machine to forward traffic to. "
                "An open port is chosen at run-time if not provided",
                "0",
                _LOCAL_PORT,
            ),
        },
        "properties": {
            "portNumber": "{{ portNumber }}",
            "type": "LocalPortForwarding",
            "localPortNumber": "{{ localPortNumber }}",
            "host": "{{ host }}",
        },
    },
    "AWS-StartSSHSession": {
        "schemaVersion": "1.0",
        "description": "Document to start SSH session over Session Manager",
        "sessionType": "Port",
        "parameters": {
            "portNumber": _port_param("(Optional) Port number of SSH server on the instance", "22"),
        },
        "properties": {"portNumber": "{{ portNumber }}"},
    },
    "AWS-StartInteractiveCommand": {
        "schemaVersion": "1.0",
        "description": "Document to run single interactive command on an instance",
        "sessionType": "InteractiveCommands",
        "parameters": {
            "command": {"type": "String", "description": "The command to run on the instance"},
        },
        "properties": _commands_properties(),
    },
    "AWS-StartNonInteractiveCommand": {
        "schemaVersion": "1.0",
        "description": "Document to run single non-interactive command on an instance",
        "sessionType": "NonInteractiveCommands",
        "parameters": {
            "command": {"type": "String", "description": "The command to run on the instance"},
        },
        "properties": _commands_properties(),
    },
}

#: Session Manager preferences when nothing is configured (the ``inputs`` of the document).
DEFAULT_PREFERENCES: dict[str, Any] = {
    "s3BucketName": "",
    "s3KeyPrefix": "",
    "s3EncryptionEnabled": True,
    "cloudWatchLogGroupName": "",
    "cloudWatchEncryptionEnabled": True,
    "cloudWatchStreamingEnabled": True,
    "idleSessionTimeout": "20",
    "maxSessionDuration": "",
    "kmsKeyId": "",
    "runAsEnabled": False,
    "runAsDefaultUser": "",
    "shellProfile": {"windows": "", "linux": ""},
}

_DOC_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[^:]*:[^:]*:document/(.+)$")


def normalize_document_name(name: str | None) -> str:
    """Strip a document ARN down to its name; ``None``/empty means the default shell document."""
    if not name:
        return DEFAULT_DOCUMENT
    match = _DOC_ARN.match(name)
    return match.group(1) if match else name


def preferences_document(preferences: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SSM-SessionManagerRunShell`` document holding these preferences."""
    inputs = copy.deepcopy(DEFAULT_PREFERENCES)
    inputs.update(copy.deepcopy(dict(preferences)))
    return {
        "schemaVersion": "1.0",
        "description": "Document to hold regional settings for Session Manager",
        "sessionType": "Standard_Stream",
        "inputs": inputs,
    }


def document_content(name: str, preferences: Mapping[str, Any]) -> str | None:
    """The JSON content of a known session document, or None if the name is unknown."""
    if name == DEFAULT_DOCUMENT:
        return json.dumps(preferences_document(preferences), indent=2)
    doc = SESSION_DOCUMENTS.get(name)
    return None if doc is None else json.dumps(doc, indent=2)


def session_type(name: str) -> str:
    """The ``sessionType`` of a document (``Standard_Stream``, ``Port``, ...)."""
    if name == DEFAULT_DOCUMENT:
        return "Standard_Stream"
    return str(SESSION_DOCUMENTS[name]["sessionType"])


def resolve_parameters(name: str, given: Mapping[str, list[str]]) -> dict[str, str]:
    """Validate StartSession ``Parameters`` against a document and apply defaults.

    Returns parameter name -> value. Raises :class:`ValueError` with an AWS-style message for an
    undefined parameter, a value not matching ``allowedPattern``, or a missing required one.
    """
    spec: Mapping[str, Any] = (
        {} if name == DEFAULT_DOCUMENT else SESSION_DOCUMENTS[name].get("parameters", {})
    )
    resolved: dict[str, str] = {}
    for key, values in given.items():
        if key not in spec:
            raise ValueError(f'Parameter "{key}" is not defined in the document {name}.')
        if len(values) != 1:
            raise ValueError(f'Parameter "{key}" must have exactly one value.')
        pattern = spec[key].get("allowedPattern")
        if pattern and not re.match(pattern, values[0]):
            raise ValueError(
                f'Parameter "{key}" "{values[0]}" failed to satisfy constraint: '
                f"allowed pattern {pattern}."
            )
        resolved[key] = values[0]
    for key, param in spec.items():
        if key in resolved:
            continue
        if "default" not in param:
            raise ValueError(f'Parameter "{key}" is required but was not provided.')
        resolved[key] = str(param["default"])
    return resolved
