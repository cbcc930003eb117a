"""The repositories a key may touch: glob patterns such as `acme/*` or `acme/web-shop`.

`*` is the only wildcard. It matches any run of characters, `/` included, so `acme/*` covers
`acme/web` and GitLab-style `acme/tools/cli` (a group's subgroups are the group's), while `*`
alone means every repository: the same rule, with no special case. Everything else is literal
and case-sensitive, like the repository names findings are stored under: `acme/*` does not
match `ACME/web`, `acme` or `acme-corp/web`.

One meaning, three translations: a compiled regular expression for uploads (`allows`), and a
LIKE or GLOB pattern for queries (findings.selectors), each escaped so that a `%`, `_`, `?` or
`[` in a repository name is only ever itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError

ALL = "*"
DEFAULT_PATTERNS: tuple[str, ...] = (ALL,)
MAX_PATTERNS = 100
# Repository names are at most 255 characters (findings.models), and so are patterns.
MAX_PATTERN_LENGTH = 255
_SEPARATORS = re.compile(r"[,\n\r]+")


def split_patterns(text: str) -> list[str]:
    """Patterns from an operator's text: separated by commas or new lines, trimmed."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def normalize_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns to store: valid, without duplicates, in the order given; `["*"]` when one
    of them is `*` (it covers the rest). ValidationError with every problem otherwise."""
    result: list[str] = []
    problems: list[str] = []
    for raw in patterns:
        if not isinstance(raw, str):
            problems.append(f"{raw!r} is not text.")
            continue
        pattern = re.sub(r"\*+", "*", raw.strip())
        if not pattern:
            continue
        if len(pattern) > MAX_PATTERN_LENGTH:
            problems.append(f"{pattern[:40]}... is longer than {MAX_PATTERN_LENGTH} characters.")
        elif any(ch.isspace() and ch != " " for ch in pattern) or "\0" in pattern:
            problems.append(f"{pattern!r} contains a control character.")
        elif pattern not in result:
            result.append(pattern)
    if not result and not problems:
        problems.append(f"Give at least one pattern ({ALL} for every repository).")
    if len(result) > MAX_PATTERNS:
        problems.append(f"At most {MAX_PATTERNS} patterns.")
    if problems:
        raise ValidationError(problems)
    return [ALL] if ALL in result else result


def allows_all(patterns: Sequence[str]) -> bool:
    return ALL in patterns


@functools.lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(".*".join(map(re.escape, p.split("*"))) for p in patterns), re.S)


def allows(patterns: Sequence[str], repository_name: str) -> bool:
    """Whether a key with these patterns may touch `repository_name`."""
    if allows_all(patterns):
        return True
    return _compiled(tuple(patterns)).fullmatch(repository_name) is not None


def like_pattern(pattern: str) -> str:
    """The pattern for `LIKE ... ESCAPE '\\'` (PostgreSQL): `%`, `_` and `\\` escaped."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def sqlite_glob_pattern(pattern: str) -> str:
    """The pattern for SQLite's case-sensitive GLOB (its LIKE ignores ASCII case): `?` and
    `[` are put in brackets (GLOB has no escape character); `]` outside brackets is literal."""
    return "".join(f"[{ch}]" if ch in "?[" else ch for ch in pattern)


def describe(patterns: Sequence[str]) -> list[str]:
    """One line per pattern, in words, for operators."""
    if allows_all(patterns):
        return ["every repository (*)"]
    lines = []
    for pattern in patterns:
        if "*" not in pattern:
            lines.append(f"{pattern} (exactly)")
        elif pattern.endswith("/*") and pattern.count("*") == 1:
            lines.append(f"{pattern} (every repository under {pattern[:-1]})")
        else:
            lines.append(f"{pattern} (* stands for any characters, / included)")
    return lines
