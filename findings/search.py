"""Word search over findings: title, file path, component, CVE and the scanner's id.

Every finding's searchable text is cut into words (runs of anything but spaces and the
punctuation below), and a GIN index over that array of words finds the findings holding all
the words of a query in a few milliseconds however many findings there are. A word is found
whole: `log4j` finds "log4j-core 2.14" and `package-lock.json` finds that file in any folder
(it is the words package, lock and json), but `log4` finds neither.

Why words and not substrings: the index is paid for by every inserted finding (an upload
inserts up to 100,000). A trigram index costs about five times the insert itself, while an
array of words is a dozen entries per finding; with a large pending list (migration 0007) the
insert only appends them and autovacuum merges them into the index later, outside the
upload's transaction. The pending list is searched too, so a finding is found as soon as it
is committed.

The embedded SQLite run has no such index; there a search is a substring scan of the same
fields (fine for the few findings a laptop holds).
"""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

# Characters that separate words, besides white space. The same list is in the index
# expression (migration 0007): keep them equal, a test checks that the index is used.
SEPARATORS = "-_./\\:;,()[]{}<>\"'!?=+*&|@#$^~`"
MAX_QUERY_WORDS = 8

_TRANSLATION = str.maketrans(dict.fromkeys(SEPARATORS + "\t\r\n", " "))


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# The words of a finding, as the index holds them. An IMMUTABLE expression over the row's own
# columns (lower, translate, string_to_array), so PostgreSQL can index it and match a query
# written the same way to the index.
TERMS_SQL = (
    "string_to_array(translate(lower("
    "title || ' ' || file_path || ' ' || component_name || ' ' || finding_id || ' ' "
    "|| cve::text), "
    f"{_sql_literal(SEPARATORS + chr(9) + chr(13) + chr(10))}, "
    f"{_sql_literal(' ' * (len(SEPARATORS) + 3))}), ' ')"
)


def query_words(text: str) -> list[str]:
    """The distinct words of a query, lower-cased, at most MAX_QUERY_WORDS."""
    words: list[str] = []
    for word in text.lower().translate(_TRANSLATION).split():
        if word not in words:
            words.append(word)
    return words[:MAX_QUERY_WORDS]


def search_q(text: str) -> Q:
    """Findings holding every word of `text` (none: nothing is filtered out)."""
    words = query_words(text)
    if not words:
        return Q()
    if connection.vendor == "postgresql":
        return Q(RawSQL(f"({TERMS_SQL}) @> %s::text[]", (words,), output_field=BooleanField()))
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
