"""Settings: defaults < TOML file (XDG config dir) < ``SSMTUI_*`` environment < command-line flags.

The file lives at ``$XDG_CONFIG_HOME/ssmtui/config.toml`` (``~/.config/ssmtui/config.toml``) unless
``--config`` or ``SSMTUI_CONFIG`` names another. Example::

    profiles = ["dev", "prod"]
    regions = ["us-east-1", "eu-west-1"]
    refresh_interval = 30            # seconds between fleet refreshes in the UI
    theme = "textual-dark"
    favourites = ["web-dev-1", "i-0abc1234def567890"]
    ca_bundle = "~/corp-ca.pem"      # else AWS_CA_BUNDLE / the profile's ca_bundle
    client_version = "1.2.764.0"     # the ClientVersion sent in the data-channel handshake
    max_attempts = 3                 # AWS API attempts (standard retry mode)
    proxies = { https = "http://proxy.corp:3128" }
    endpoints = { ssm = "https://ssm.vpce.example", ec2 = "…", kms = "…", sts = "…" }

    [keymap]
    refresh = "ctrl+r"

    [[tunnels]]
    name = "orders-db"
    target = "bastion-prod"          # id, Name, tag:K=V or private IP
    remote_port = 5432
    local_port = 15432
    remote_host = "orders.cluster-xyz.eu-west-1.rds.amazonaws.com"
    profile = "prod"
    region = "eu-west-1"

A bad file raises one :class:`~ssmtui.errors.ConfigError` naming ``file:line``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ssmtui import CLIENT_VERSION, __version__
from ssmtui.errors import ConfigError
from ssmtui.models import FleetScope

__all__ = ["ENDPOINT_SERVICES", "USER_AGENT", "Config", "TunnelPreset", "default_config_path"]

#: Added to the AWS SDK's User-Agent header.
USER_AGENT = f"ssmtui/{__version__}"
#: Services whose endpoint can be overridden with ``endpoints = {…}``.
ENDPOINT_SERVICES = ("ssm", "ec2", "kms", "sts", "iam")

_ENV_PREFIX = "SSMTUI_"
_VERSION_RE = re.compile(r"^\d+(\.\d+){2,3}$")
_TOML_EOF = "(at end of document)"
_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/ssmtui/config.toml``, else ``~/.config/ssmtui/config.toml``."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "ssmtui" / "config.toml"


@dataclass(frozen=True, slots=True)
class TunnelPreset:
    """A saved port-forwarding tunnel."""

    name: str
    target: str
    remote_port: int
    #: 0 = pick a free local port.
    local_port: int = 0
    #: Forward to this host through the target (``AWS-StartPortForwardingSessionToRemoteHost``).
    remote_host: str | None = None
    profile: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Config:
    """Every ssmtui setting. Build with :meth:`load`; change with :meth:`with_overrides`."""

    #: AWS profiles to list; empty = ``AWS_PROFILE`` or ``default``.
    profiles: tuple[str, ...] = ()
    #: Regions to list; empty = each profile's configured region.
    regions: tuple[str, ...] = ()
    refresh_interval: float = 30.0
    tunnels: tuple[TunnelPreset, ...] = ()
    favourites: tuple[str, ...] = ()
    #: Action id -> key (Textual key names).
    keymap: Mapping[str, str] = field(default_factory=dict)
    theme: str | None = None
    #: Service (ssm/ec2/kms/sts) -> endpoint URL.
    endpoints: Mapping[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None
    client_version: str = CLIENT_VERSION
    #: Scheme -> proxy URL (``{"https": "http://proxy:3128"}``); else HTTPS_PROXY etc. apply.
    proxies: Mapping[str, str] = field(default_factory=dict)
    max_attempts: int = 3
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: The file the settings came from, if any.
    path: Path | None = None

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> Config:
        """Read the config file, then apply ``SSMTUI_*`` variables, then ``overrides`` (flags).

        ``path`` (or ``SSMTUI_CONFIG``) must exist when given; the default path may be absent.
        ``overrides`` uses the file's keys; ``None`` values are ignored.
        """
        environ = os.environ if env is None else env
        explicit = path if path is not None else (environ.get(_ENV_PREFIX + "CONFIG") or None)
        file = Path(explicit).expanduser() if explicit is not None else default_config_path(environ)
        values: dict[str, Any] = {}
        source: Path | None = None
        if file.exists() or explicit is not None:
            values = _read_toml(file)
            source = file
        config = _build(cls(path=source), values, _Where(str(file), _file_text(file)))
        env_values = _from_env(environ)
        config = _build(config, env_values, _Where("environment", None))
        return config.with_overrides(overrides or {})

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """A copy with ``overrides`` (config-file keys; ``None`` values skipped) applied."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _build(self, given, _Where("command line", None)) if given else self

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint override of ``service``, if any."""
        return self.endpoints.get(service)

    def scopes(self, resolve_region: Callable[[str], str | None]) -> list[FleetScope]:
        """The (profile, region) pairs to list; ``resolve_region(profile)`` fills missing regions.

        Raises :class:`ConfigError` when a profile has no region and none is configured.
        """
        profiles = list(self.profiles) or [os.environ.get("AWS_PROFILE") or "default"]
        scopes: list[FleetScope] = []
        for profile in profiles:
            regions = list(self.regions)
            if not regions:
                region = resolve_region(profile)
                if not region:
                    raise ConfigError(
                        f"no region for profile {profile!r}",
                        hint=f"pass --region, set regions in the config, or run: "
                        f"aws configure set region us-east-1 --profile {profile}",
                    )
                regions = [region]
            scopes.extend(FleetScope(profile, r) for r in regions)
        return list(dict.fromkeys(scopes))


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class _Where:
    """Where values came from, to name the file and line in errors."""

    name: str
    text: str | None

    def error(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        line = _line_of(self.text, key) if self.text is not None else None
        return ConfigError(f"{key}: {message}", path=self.name, line=line, hint=hint)


def _file_text(file: Path) -> str | None:
    try:
        return file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _line_of(text: str | None, key: str) -> int | None:
    """The 1-based line that sets top-level ``key`` (``key =`` / ``[key]`` / ``[[key]]``)."""
    if not text:
        return None
    top = key.split(".")[0].split("[")[0]
    pattern = re.compile(
        rf"^\s*(?:{re.escape(top)}\s*=|\[\[?\s*{re.escape(top)}\s*[\].])", re.MULTILINE
    )
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with open(file, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            "no such config file", path=str(file), hint="check --config / SSMTUI_CONFIG"
        ) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", path=str(file)) from None
    except PermissionError as exc:
        raise ConfigError("cannot read config file (permission denied)", path=str(file)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("config file is not UTF-8 text", path=str(file), cause=exc) from exc
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        match = _TOML_POS_RE.search(text)
        line = int(match.group(1)) if match else None
        detail = _TOML_POS_RE.sub("", text) if match else text
        if match is None and text.endswith(_TOML_EOF):
            detail = text[: -len(_TOML_EOF)].rstrip() + " at the end of the file"
            line = max(1, len((_file_text(file) or "").splitlines()))
        raise ConfigError(f"invalid TOML: {detail}", path=str(file), line=line, cause=exc) from exc


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, name in (("profiles", "PROFILES"), ("regions", "REGIONS")):
        raw = environ.get(_ENV_PREFIX + name)
        if raw:
            values[key] = [p.strip() for p in raw.split(",") if p.strip()]
    for key in ("refresh_interval", "theme", "ca_bundle", "client_version"):
        raw = environ.get(_ENV_PREFIX + key.upper())
        if raw:
            values[key] = raw
    return values


def _strings(where: _Where, key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) and x for x in items):
        raise where.error(key, "expected a list of non-empty strings")
    return tuple(dict.fromkeys(s.strip() for s in items))


def _number(where: _Where, key: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:
        raise where.error(key, f"expected a number from {low:g} to {high:g}, got {value!r}")
    return number


def _string_map(where: _Where, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise where.error(key, 'expected a table of strings, e.g. { name = "value" }')
    return dict(value)


def _url(where: _Where, key: str, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise where.error(key, f"expected an http(s):// URL, got {value!r}")
    return value


def _regions(where: _Where, key: str, value: Any) -> tuple[str, ...]:
    regions = _strings(where, key, value)
    for region in regions:
        if not FleetScope.valid_region(region):
            raise where.error(key, f"{region!r} is not an AWS region", hint="e.g. us-east-1")
    return regions


def _tunnel(where: _Where, index: int, raw: Any) -> TunnelPreset:
    key = f"tunnels[{index}]"
    if not isinstance(raw, Mapping):
        raise where.error(key, "expected a table ([[tunnels]])")
    allowed = set(TunnelPreset.__dataclass_fields__)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise where.error(key, f"unknown key {unknown[0]!r}", hint=_suggest(unknown[0], allowed))
    for need in ("name", "target", "remote_port"):
        if need not in raw:
            raise where.error(key, f"missing {need!r}")
    for text_key in ("name", "target", "remote_host", "profile", "region"):
        if text_key in raw and (not isinstance(raw[text_key], str) or not raw[text_key]):
            raise where.error(f"{key}.{text_key}", "expected a non-empty string")
    ports = {}
    for port_key, low in (("remote_port", 1), ("local_port", 0)):
        port = raw.get(port_key, 0)
        if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
            raise where.error(f"{key}.{port_key}", f"expected a port {low}-65535, got {port!r}")
        ports[port_key] = port
    if "region" in raw and not FleetScope.valid_region(raw["region"]):
        raise where.error(f"{key}.region", f"{raw['region']!r} is not an AWS region")
    return TunnelPreset(
        name=raw["name"],
        target=raw["target"],
        remote_port=ports["remote_port"],
        local_port=ports["local_port"],
        remote_host=raw.get("remote_host"),
        profile=raw.get("profile"),
        region=raw.get("region"),
    )


def _suggest(word: str, choices: Any) -> str | None:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else None


_KEYS = {
    "profiles",
    "regions",
    "refresh_interval",
    "tunnels",
    "favourites",
    "favorites",
    "keymap",
    "theme",
    "endpoints",
    "ca_bundle",
    "client_version",
    "proxies",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
}


def _build(base: Config, values: Mapping[str, Any], where: _Where) -> Config:
    """``base`` with validated ``values`` applied."""
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise where.error(unknown[0], "unknown setting", hint=_suggest(unknown[0], _KEYS))
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key == "profiles":
            changes[key] = _strings(where, key, value)
        elif key == "regions":
            changes[key] = _regions(where, key, value)
        elif key in ("favourites", "favorites"):
            changes["favourites"] = _strings(where, key, value)
        elif key == "refresh_interval":
            changes[key] = _number(where, key, value, 1, 86400)
        elif key in ("connect_timeout", "read_timeout"):
            changes[key] = _number(where, key, value, 0.1, 3600)
        elif key == "max_attempts":
            changes[key] = int(_number(where, key, value, 1, 20))
        elif key in ("theme", "client_version", "ca_bundle"):
            if not isinstance(value, str) or not value:
                raise where.error(key, "expected a non-empty string")
            changes[key] = value
        elif key == "keymap":
            changes[key] = _string_map(where, key, value)
        elif key == "proxies":
            proxies = _string_map(where, key, value)
            for scheme, url in proxies.items():
                _url(where, f"{key}.{scheme}", url)
            changes[key] = proxies
        elif key == "endpoints":
            endpoints = _string_map(where, key, value)
            for service, url in endpoints.items():
                if service not in ENDPOINT_SERVICES:
                    raise where.error(
                        f"{key}.{service}",
                        "unknown service",
                        hint=f"endpoints can be set for {', '.join(ENDPOINT_SERVICES)}",
                    )
                _url(where, f"{key}.{service}", url)
            changes[key] = {**base.endpoints, **endpoints}
        elif key == "tunnels":
            if not isinstance(value, list | tuple):
                raise where.error(key, "expected an array of tables ([[tunnels]])")
            changes[key] = tuple(_tunnel(where, i, t) for i, t in enumerate(value))
    if "client_version" in changes and not _VERSION_RE.match(changes["client_version"]):
        raise where.error("client_version", f"expected a dotted version like {CLIENT_VERSION!r}")
    if "ca_bundle" in changes:
        bundle = Path(changes["ca_bundle"]).expanduser()
        if not bundle.is_file():
            raise where.error("ca_bundle", f"no such file: {bundle}")
        changes["ca_bundle"] = str(bundle)
    return replace(base, **changes)
