"""Repository patterns of a key: what `acme/*`, `acme/web-shop` and `*` allow, and that the
upload check (Python) and the query filter (SQL) agree on every name."""

import pytest
from django.core.exceptions import ValidationError

from apikeys.repositories import allows, normalize_patterns, split_patterns
from findings.models import Finding
from findings.selectors import FindingFilters, findings_filtered

NAMES = [
    "acme/web-shop",
    "acme/api",
    "acme/tools/cli",  # a GitLab subgroup
    "acme",
    "acme-corp/web",
    "ACME/web",
    "tools/cli",
    "tools/cli-old",
    "team_a/x",  # `_` is a LIKE wildcard: must stay literal
    "teamXa/x",
    "100%/x",  # so is `%`
    "100x/x",
    "back\\slash/x",
    "odd?[name]/x",  # GLOB's wildcards
    "oddz[name]/x",
]


@pytest.mark.parametrize(
    ("patterns", "allowed"),
    [
        (["*"], set(NAMES)),
        (["acme/web-shop"], {"acme/web-shop"}),
        (["acme/*"], {"acme/web-shop", "acme/api", "acme/tools/cli"}),
        (["acme/*", "tools/cli"], {"acme/web-shop", "acme/api", "acme/tools/cli", "tools/cli"}),
        (["tools/cli*"], {"tools/cli", "tools/cli-old"}),
        (
            ["*/x"],
            {
                "team_a/x",
                "teamXa/x",
                "100%/x",
                "100x/x",
                "back\\slash/x",
                "odd?[name]/x",
                "oddz[name]/x",
            },
        ),
        (["team_a/*"], {"team_a/x"}),
        (["100%/*"], {"100%/x"}),
        (["back\\slash/*"], {"back\\slash/x"}),
        (["odd?[name]/x"], {"odd?[name]/x"}),
        (["acme*web*"], {"acme/web-shop", "acme-corp/web"}),
        (["nothing/*"], set()),
    ],
    ids=[
        "star-is-every-repository",
        "exact",
        "prefix-crosses-slash",
        "several-patterns",
        "trailing-star",
        "leading-star",
        "underscore-is-literal",
        "percent-is-literal",
        "backslash-is-literal",
        "glob-characters-are-literal",
        "two-stars",
        "no-match",
    ],
)
@pytest.mark.django_db
def test_a_pattern_allows_the_same_repositories_on_upload_and_in_queries(patterns, allowed):
    assert {name for name in NAMES if allows(patterns, name)} == allowed
    for n, name in enumerate(NAMES):
        Finding.objects.create(
            repository_name=name,
            branch_name="main",
            scan_type="SAST",
            finding_id=f"f{n}",
            title="t",
            severity="HIGH",
            severity_rank=1,
            content_hash=0,
            first_seen_at="2026-01-01T00:00:00Z",
            first_seen_upload_id=0,
            last_seen_at="2026-01-01T00:00:00Z",
            last_seen_upload_id=0,
        )
    found = findings_filtered(FindingFilters(repository_patterns=tuple(patterns)))
    assert set(found.values_list("repository_name", flat=True)) == allowed


def test_matching_is_case_sensitive_like_the_stored_names():
    assert allows(["acme/*"], "acme/web")
    assert not allows(["acme/*"], "ACME/web")
    assert not allows(["acme/web"], "acme/Web")


def test_operators_write_patterns_separated_by_commas_or_lines():
    assert split_patterns(" acme/* , tools/cli\n\nops/infra\r\n") == [
        "acme/*",
        "tools/cli",
        "ops/infra",
    ]


def test_patterns_are_stored_tidy():
    assert normalize_patterns(["acme/**", "acme/*", " tools/cli "]) == ["acme/*", "tools/cli"]
    # `*` covers every other pattern.
    assert normalize_patterns(["acme/*", "*"]) == ["*"]


@pytest.mark.parametrize(
    "patterns",
    [[], ["", "  "], ["acme/\t*"], ["a\0b"], ["x" * 256], [f"r{i}" for i in range(101)]],
    ids=["none", "blank", "tab", "nul", "too-long", "too-many"],
)
def test_unusable_patterns_are_refused_with_a_reason(patterns):
    with pytest.raises(ValidationError) as excinfo:
        normalize_patterns(patterns)
    assert excinfo.value.messages


@pytest.mark.parametrize(
    "pattern", ["acme/*", "team_a/*", "100%/*", "odd?[name]/x", "*/x", "acme*web*", "tools/cli"]
)
def test_the_embedded_run_matches_the_same_names_with_sqlite_glob(pattern):
    """SQLite (make run) has no case-sensitive LIKE; its GLOB must agree with the rest."""
    import sqlite3

    from apikeys.repositories import sqlite_glob_pattern

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE r (name TEXT)")
    db.executemany("INSERT INTO r VALUES (?)", [(name,) for name in NAMES])
    found = {
        row[0]
        for row in db.execute(
            "SELECT name FROM r WHERE name GLOB ?", [sqlite_glob_pattern(pattern)]
        )
    }
    assert found == {name for name in NAMES if allows([pattern], name)}
