"""The fleet view's pure logic (no textual): filter query, fuzzy matching, sorting, summaries."""

from __future__ import annotations

from ssmtui.errors import CredentialsError, SsmtuiError
from ssmtui.models import FleetResult, FleetScope, Instance
from ssmtui.ui.fleet_model import (
    COLUMN_KEYS,
    COLUMNS,
    FleetIndex,
    FleetQuery,
    describe_error,
    fleet_summary,
    row_key,
)
from ssmtui.ui.source import StaticFleetSource, merge_results


def inst(
    iid: str,
    name: str,
    *,
    ping: str = "Online",
    profile: str = "dev",
    region: str = "us-east-1",
    ip: str | None = None,
    agent: str = "3.3.987.0",
    platform: str = "Amazon Linux",
    **tags: str,
) -> Instance:
    return Instance(
        instance_id=iid,
        name=name,
        ping_status=ping,
        platform_type="Windows" if "Windows" in platform else "Linux",
        platform_name=platform,
        agent_version=agent,
        private_ip=ip,
        profile=profile,
        region=region,
        account_id="111111111111",
        tags=tuple(sorted({"Name": name, **tags}.items())),
        registered=ping != "NotRegistered",
    )


FLEET = [
    inst("i-0000000000000000a", "web-dev-1", ip="10.0.0.10", Role="web", Env="dev"),
    inst("i-0000000000000000b", "web-dev-2", ping="ConnectionLost", ip="10.0.0.9", Role="web"),
    inst("i-0000000000000000c", "api-prod-1", profile="prod", ip="10.2.0.1", Role="api"),
    inst(
        "i-0000000000000000d",
        "win-build",
        region="eu-west-1",
        platform="Microsoft Windows Server 2022",
        agent="3.10.1.0",
        Role="build",
    ),
    inst("i-0000000000000000e", "legacy", ping="Inactive", agent="2.3.1644.0", Team="data"),
    inst("i-0000000000000000f", "reporting-old", ping="NotRegistered", agent=""),
]


def names(rows: list[Instance]) -> list[str]:
    return [i.display_name for i in rows]


def test_query_parses_terms_and_tokens() -> None:
    q = FleetQuery.parse('web tag:Role=web ping:online "tag:Team=Data Eng" region:EU')
    assert q.terms == ("web",)
    kinds = [(f.kind, f.key, f.value) for f in q.filters]
    assert ("tag", "Role", "web") in kinds
    assert ("ping", None, "Online") in kinds
    assert ("tag", "Team", "Data Eng") in kinds
    assert ("region", None, "eu") in kinds
    assert q.error is None and not q.is_empty
    assert FleetQuery.parse("   ").is_empty


def test_bad_tokens_are_reported_in_one_line_and_skipped() -> None:
    q = FleetQuery.parse("web ping:sideways colour:blue tag:")
    assert q.terms == ("web",) and q.filters == ()
    assert q.error is not None and "\n" not in q.error
    assert "unknown ping status" in q.error and "unknown filter" in q.error
    assert "expected tag:Key=Value" in q.error
    unbalanced = FleetQuery.parse('name:"web')
    assert unbalanced.error is not None and "quote" in unbalanced.error


def test_ping_prefix_completes_while_typing() -> None:
    assert FleetQuery.parse("ping:on").filters[0].value == "Online"
    assert FleetQuery.parse("ping:conn").filters[0].value == "ConnectionLost"
    assert FleetQuery.parse("ping:not").filters[0].value == "NotRegistered"
    assert FleetQuery.parse("ping:o").error is None  # "o" -> online only
    assert FleetQuery.parse("ping:x").error is not None


def test_select_filters_with_and_semantics() -> None:
    idx = FleetIndex(FLEET)
    assert names(idx.select(FleetQuery.parse("tag:Role=web"))) == ["web-dev-1", "web-dev-2"]
    assert names(idx.select(FleetQuery.parse("tag:Role=web ping:online"))) == ["web-dev-1"]
    assert names(idx.select(FleetQuery.parse("profile:prod"))) == ["api-prod-1"]
    assert names(idx.select(FleetQuery.parse("platform:windows"))) == ["win-build"]
    assert names(idx.select(FleetQuery.parse("10.2.0"))) == ["api-prod-1"]  # IP substring
    assert names(idx.select(FleetQuery.parse("team=data"))) == ["legacy"]  # tag text
    assert names(idx.select(FleetQuery.parse("0000000000f"))) == ["reporting-old"]  # id
    assert names(idx.select(FleetQuery.parse("tag:Team"))) == ["legacy"]  # has the tag
    assert idx.select(FleetQuery.parse("nothing-like-this")) == []


def test_fuzzy_text_matches_a_subsequence_of_the_name() -> None:
    idx = FleetIndex(FLEET)
    assert names(idx.select(FleetQuery.parse("wbd2"))) == ["web-dev-2"]
    assert names(idx.select(FleetQuery.parse("rptold"))) == ["reporting-old"]
    assert idx.select(FleetQuery.parse("zq")) == []


def test_sorting_by_every_column_and_reverse() -> None:
    idx = FleetIndex(FLEET)
    for key in COLUMN_KEYS:
        rows = idx.select(FleetQuery(), key)
        assert sorted(map(row_key, rows)) == sorted(map(row_key, FLEET))
        assert idx.select(FleetQuery(), key, reverse=True) == rows[::-1]
    by_ping = [i.ping_status for i in idx.select(FleetQuery(), "status")]
    assert by_ping == ["Online", "Online", "Online", "ConnectionLost", "Inactive", "NotRegistered"]
    # versions sort numerically (3.10 after 3.3), IPs numerically (10.0.0.9 before 10.0.0.10)
    agents = [i.agent_version for i in idx.select(FleetQuery(), "agent")]
    assert agents.index("3.10.1.0") > agents.index("3.3.987.0") > agents.index("2.3.1644.0")
    ips = [i.private_ip for i in idx.select(FleetQuery(), "ip") if i.private_ip]
    assert ips == ["10.0.0.9", "10.0.0.10", "10.2.0.1"]
    roles = [i.tag("Role") for i in idx.select(FleetQuery(), "role")]
    assert roles[-2:] == [None, None]  # empty values last


def test_widths_fit_content_within_bounds() -> None:
    idx = FleetIndex(FLEET)
    widths = idx.widths()
    for col in COLUMNS:
        assert max(col.min_width, len(col.label)) <= widths[col.key]
        assert widths[col.key] <= max(col.max_width, len(col.label))
    assert widths["name"] == len("reporting-old")
    assert widths["platform"] == 24  # capped: "Microsoft Windows Server 2022" is longer
    assert FleetIndex([]).widths()["name"] == len("Name")


def test_summary_and_error_lines() -> None:
    assert fleet_summary(FLEET) == (
        "6 instances · 3 online · 1 connection lost · 1 inactive · 1 not registered"
    )
    assert fleet_summary([]) == "0 instances"
    scope = FleetScope("prod", "eu-west-1")
    err = CredentialsError(
        "prod/eu-west-1: the AWS credentials have expired",
        hint="run: aws sso login --profile prod",
    )
    assert describe_error(scope, err) == (
        "prod/eu-west-1: the AWS credentials have expired — run: aws sso login --profile prod"
    )
    assert describe_error(scope, SsmtuiError("boom")) == "prod/eu-west-1: boom"
    assert describe_error(scope, RuntimeError()) == "prod/eu-west-1: RuntimeError"


async def test_static_source_reports_each_scope() -> None:
    dev, prod = FleetScope("dev", "us-east-1"), FleetScope("prod", "us-east-1")
    err = SsmtuiError("nope")
    result = FleetResult(tuple(FLEET[:2]), {prod: err}, (dev, prod))
    source = StaticFleetSource(result)
    seen: dict[FleetScope, FleetResult] = {}
    assert await source.list_fleet(lambda s, r: seen.setdefault(s, r)) is result
    assert list(seen) == [dev, prod]
    assert len(seen[dev]) == 2 and seen[prod].errors == {prod: err}
    merged = merge_results([dev, prod], [seen[dev], seen[prod]])
    assert merged.instances == result.instances and merged.errors == {prod: err}
    assert merged.scopes == (dev, prod)


def test_select_reuses_earlier_selections_without_changing_results() -> None:
    """Typing narrows the previous selection and deleting finds a cached one: the rows must be
    exactly what a fresh index selects, for every prefix, sort and direction."""
    fleet = [
        inst(f"i-{n:017x}", f"{word}-{env}-{n}", ip=f"10.{n % 3}.0.{n}", Role=word)
        for n, (word, env) in enumerate(
            (w, e) for w in ("web", "db", "wbd", "api", "w") for e in ("dev", "prod", "qa")
        )
    ]
    idx = FleetIndex(fleet)
    typed = ["w", "we", "web", "web-", "web-d", "web-", "we", "w", "", "w", "wd", "wd1", "wd"]
    typed += ["tag:Role=w", "tag:Role=we", "tag:Role=web", "tag:Role=web p", "tag:Role=web pr"]
    typed += ["10.1", "10.1 d", "10.1 db", "10.1 d", "db d", "db dev", "dbd", "dbdv"]
    for sort, reverse in (("name", False), ("name", True), ("ip", False), ("name", False)):
        for text in typed:
            query = FleetQuery.parse(text)
            expected = FleetIndex(fleet).select(query, sort, reverse)
            assert idx.select(query, sort, reverse) == expected, (text, sort, reverse)
