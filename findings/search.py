"""Word search over findings: title, file path, component, CVE and the scanner's id.

Every finding's searchable text is cut into words (runs of anything but spaces and the
punctuation below) and kept in FindingWords under a GIN index, which finds the findings that
hold all the words of a query in milliseconds however many findings there are. A word is
found whole: `log4j` finds "log4j-core 2.14" and `package-lock.json` finds that file in any
folder (it is the words package, lock and json), but `log4` finds neither.

Uploads pay nothing for it. Any index on the findings table is paid by every inserted
finding, and an upload inserts up to 100,000: a trigram index costs about five times the
insert itself, and even an index of words computed from the row costs about as much as the
insert (the text has to be cut up inside the upload's transaction). So an upload only notes
which findings it created or rewrote (one SearchQueue row per upload, one per rewritten
finding), and their words are written afterwards, outside any upload, by
`search_index_catch_up`: before every search (so a search never misses a finding that is
stored) and from `manage.py indexsearch`, run every minute, so that the search itself seldom
has anything to do. The first search after an upload of 100,000 findings that no catch-up
has seen yet waits for their words (about a second; bench/staff_pages.py measures it).

The embedded SQLite run has no such index; there a search is a substring scan of the same
fields (fine for the few findings a laptop holds).
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

logger = logging.getLogger(__name__)

# Characters that separate words, besides white space.
SEPARATORS = "-_./\\:;,()[]{}<>\"'!?=+*&|@#$^~`\t\r\n"
MAX_QUERY_WORDS = 8

_TRANSLATION = str.maketrans(dict.fromkeys(SEPARATORS, " "))


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _words_sql() -> str:
    # Nested replace() rather than translate(): translate is about four times slower on
    # UTF-8 text, and this runs over every new finding.
    text = (
        "lower(f.title || ' ' || f.file_path || ' ' || f.component_name || ' ' || "
        "f.finding_id || ' ' || f.cve::text)"
    )
    for separator in SEPARATORS:
        text = f"replace({text}, {_sql_literal(separator)}, ' ')"
    return text


# The words of a finding `f`, as one space-separated text (FindingWords.words).
WORDS_SQL = _words_sql()
# What the GIN index holds and a query matches (migration 0007).
WORDS_ARRAY_SQL = "string_to_array(words, ' ')"
CATCH_UP_BATCH = 200


def query_words(text: str) -> list[str]:
    """The distinct words of a query, lower-cased, at most MAX_QUERY_WORDS."""
    words: list[str] = []
    for word in text.lower().translate(_TRANSLATION).split():
        if word not in words:
            words.append(word)
    return words[:MAX_QUERY_WORDS]


def search_q(text: str) -> Q:
    """Findings holding every word of `text` (none: nothing is filtered out). On PostgreSQL,
    call search_index_catch_up first, or findings stored since the last one are not found."""
    words = query_words(text)
    if not words:
        return Q()
    if connection.vendor == "postgresql":
        matching = RawSQL(
            f"SELECT finding_id FROM findings_findingwords WHERE {WORDS_ARRAY_SQL} @> %s::text[]",
            (words,),
        )
        return Q(id__in=matching)
    condition = Q()
    for word in words:
        condition &= (
            Q(title__icontains=word)
            | Q(file_path__icontains=word)
            | Q(component_name__icontains=word)
            | Q(cve__icontains=word)
            | Q(finding_id__icontains=word)
        )
    return condition


def search_index_catch_up() -> int:
    """Write the words of every finding the queue names (PostgreSQL; elsewhere nothing to
    do). Queue rows another process is working on are skipped, not waited for. Returns how
    many findings were indexed."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        # Mostly there is nothing to do: one look, without a transaction.
        cursor.execute("SELECT EXISTS (SELECT 1 FROM findings_searchqueue)")
        if not cursor.fetchone()[0]:
            return 0
    indexed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM findings_searchqueue WHERE id IN ("
                " SELECT id FROM findings_searchqueue ORDER BY id LIMIT %s"
                " FOR UPDATE SKIP LOCKED) RETURNING low, high",
                [CATCH_UP_BATCH],
            )
            ranges = _merged(cursor.fetchall())
            if not ranges:
                break
            cursor.execute(
                "INSERT INTO findings_findingwords (finding_id, words) "
                f"SELECT f.id, {WORDS_SQL} "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS q (low, high) "
                "JOIN findings_finding f ON f.id BETWEEN q.low AND q.high "
                "ON CONFLICT (finding_id) DO UPDATE SET words = excluded.words",
                [[low for low, _ in ranges], [high for _, high in ranges]],
            )
            indexed += max(int(cursor.rowcount), 0)
    if indexed:
        logger.info("search index caught up", extra={"findings": indexed})
    return indexed


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges with overlapping ones joined (one statement may write a row only once)."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
