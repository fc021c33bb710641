"""Trimmed botocore models (ssmtui.aws.service_models): every operation the code calls stays
available, the streamed extraction equals trimming the full model, and clients work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.loaders
import pytest
from botocore import xform_name
from botocore.session import Session

from ssmtui.aws.service_models import (
    ALLOWED_OPERATIONS,
    ENDPOINT_DATA_SERVICES,
    TrimmedLoader,
    extract_endpoints,
    extract_service_model,
    trim_service_model,
)

PACKAGE = Path(__file__).resolve().parent.parent / "ssmtui"


def _sources() -> dict[str, str]:
    """The package's source (the simulated AWS excluded: it implements, not calls, the APIs)."""
    return {
        str(p.relative_to(PACKAGE)): p.read_text()
        for p in PACKAGE.rglob("*.py")
        if "sim" not in p.relative_to(PACKAGE).parts
    }


def _full_model(service: str) -> dict[str, object]:
    model: dict[str, object] = botocore.loaders.create_loader().load_service_model(
        service, "service-2"
    )
    return model


@pytest.mark.parametrize("service", sorted(ALLOWED_OPERATIONS))
def test_every_called_operation_is_allowed(service: str) -> None:
    words = {
        name: set(re.findall(r"\b[a-z_][a-z0-9_]*\b", text)) for name, text in _sources().items()
    }
    operations = _full_model(service)["operations"]
    assert isinstance(operations, dict)
    missing = {}
    for op in operations:
        users = [name for name, found in words.items() if xform_name(op) in found]
        if users and op not in ALLOWED_OPERATIONS[service]:
            missing[op] = users
    assert not missing, f"add these {service} operations to ALLOWED_OPERATIONS: {missing}"


def test_trimmed_services_are_never_called_by_computed_name() -> None:
    # An operation name built with an f-string (``call("ec2", f"describe_{x}")``, as the
    # doctor does for IAM) would escape the check above.
    services = "|".join(ALLOWED_OPERATIONS)
    computed = re.compile(rf"""["']({services})["']\s*,\s*f["']""")
    found = {name: m.group(0) for name, text in _sources().items() if (m := computed.search(text))}
    assert not found, f"computed operation names for a trimmed service: {found}"


@pytest.mark.parametrize("service", sorted(ALLOWED_OPERATIONS))
def test_extraction_equals_trimming_the_full_model(service: str, tmp_path: Path) -> None:
    full = _full_model(service)
    loader = TrimmedLoader()
    trimmed = loader.load_service_model(service, "service-2")
    assert trimmed == json.loads(json.dumps(trim_service_model(full, ALLOWED_OPERATIONS[service])))
    assert set(trimmed["operations"]) == set(ALLOWED_OPERATIONS[service]) & set(
        full["operations"]  # type: ignore[arg-type]
    )
    assert "documentation" not in json.dumps(trimmed["operations"])
    # Every shape referenced is there.
    for shape in trimmed["shapes"].values():
        for member in (shape.get("members") or {}).values():
            assert member["shape"] in trimmed["shapes"]
    # The streamed extraction on the raw text gives the same.
    text = json.dumps(full, indent=1)
    assert extract_service_model(text, ALLOWED_OPERATIONS[service]) == trimmed


def test_endpoint_data_keeps_only_the_services_used() -> None:
    full = botocore.loaders.create_loader().load_data("endpoints")
    trimmed = TrimmedLoader().load_data("endpoints")
    assert len(trimmed["partitions"]) == len(full["partitions"])
    for mine, theirs in zip(trimmed["partitions"], full["partitions"], strict=True):
        assert set(mine["services"]) == set(theirs["services"]) & ENDPOINT_DATA_SERVICES
        for name, value in mine["services"].items():
            assert value == theirs["services"][name]
        assert {k: v for k, v in mine.items() if k != "services"} == {
            k: v for k, v in theirs.items() if k != "services"
        }
    assert extract_endpoints(json.dumps(full), ["ec2"])["partitions"][0]["services"].keys() == {
        "ec2"
    }


def test_clients_built_on_the_trimmed_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    session = Session()
    session.register_component("data_loader", TrimmedLoader())
    keys = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}
    ec2 = session.create_client("ec2", region_name="eu-west-1", **keys)
    ssm = session.create_client("ssm", region_name="eu-west-1", **keys)
    iam = session.create_client("iam", region_name="eu-west-1", **keys)
    for client, service in ((ec2, "ec2"), (ssm, "ssm")):
        for op in ALLOWED_OPERATIONS[service]:
            assert hasattr(client, xform_name(op))
    assert not hasattr(ec2, "run_instances")
    assert ec2.can_paginate("describe_instances")
    assert ec2.meta.endpoint_url == "https://ec2.eu-west-1.amazonaws.com"
    assert ssm.meta.endpoint_url == "https://ssm.eu-west-1.amazonaws.com"
    assert hasattr(iam, "list_attached_role_policies")  # IAM is not trimmed
    assert iam.meta.endpoint_url == "https://iam.amazonaws.com"
