"""SARIF rules (findings.models.ScannerRule): stored once by digest, however many findings of
however many uploads they describe.

A log of a few rules has them stored in its upload's transaction (`keep_rules`). A large log
has a rule per CVE (Trivy, Grype: ~95,000 rules and 120 MB of help text for 100,000
results), and storing each as a row costs PostgreSQL about 5 us and the upload's process
about 2 us more: as much again as the 100,000 findings' own merge. So an upload keeps the
rules that are new to the service as packs instead: their rows, compressed together (zstd),
one row of findings.models.ScannerRulePack per 64 MB of JSON, written in the upload's
transaction (they commit, or vanish, with its findings). When a sample of the log's rules
says they are new (`pack_as_read`), they are compressed as the reader reads them, while the
findings are merged. `rules_catch_up` turns packs into rules,
outside any upload: before anything reads a rule (the SARIF export, a finding's page), and
from `manage.py expandrules`, run every minute. The same pattern as the search words
(findings.search); the cost of a rule's row is paid once, later, by whoever first needs it.

An upload of a large log whose rules an upload before stored (the same scanner on the same
image: another branch, the next build) recognises them by their set (ScannerRuleSet: the
digest of their digests, in the log's order), written with the upload that stored them, and
looks none of them up; any other is looked up (_new_rules), and its set written.

Why not a second connection that stores the rules while the findings are merged (what this
module replaced): it still paid every row during the upload, on a machine whose cores the
merge already keeps busy; it held a second connection per upload, committed rules ahead of
the findings (a refused upload left rules behind), and could wait on a lock that PostgreSQL
cannot see as a deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from hashlib import sha256
from operator import itemgetter
from typing import Any

import msgspec
import psycopg
import zstandard
from django.db import connection as default_connection
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from msgspec import Raw

from findings.merge import BYTES_DUMPER
from findings.normalize import Rules, spread

logger = logging.getLogger(__name__)

# Fewer new rules than this are stored as rows at once (a pack would save little, and they
# are then shown without a catch-up); at least this many go into packs.
PACK_MIN = 4096
# The JSON of the rules in one pack, at most (a bytea value must stay under 1 GB; a pack is
# decompressed whole by the catch-up).
PACK_MAX_BYTES = 64 * 2**20
_RULES = "gerion_scanner_rule_new"
# The stored rules among digests given as one text (_stored_rules): which, or how many.
_STORED_AMONG = "FROM findings_scannerrule WHERE digest = ANY(string_to_array(%s, ','))"
_STORED_RULES = f"SELECT string_agg(digest, ',') {_STORED_AMONG}"
_STORED_COUNT = f"SELECT count(*) {_STORED_AMONG}"
_RULE_SET_STORED = "SELECT 1 FROM findings_scannerruleset WHERE digest = %s"
_RULE_SET_ADD = (
    "INSERT INTO findings_scannerruleset (digest) VALUES (%s) ON CONFLICT (digest) DO NOTHING"
)
_pack_encoder = msgspec.json.Encoder()
_Index = list[tuple[str, str, int]]


def pack_as_read(connection: BaseDatabaseWrapper, rules: Rules) -> None:
    """Before an upload's findings are read: when its log describes at least PACK_MIN rules
    and none of its sample is stored (a scanner's rules seen for the first time, the worst
    case), its rules are packed as the reader reads them (RulePacker): zstd's own threads
    compress them while the findings are merged, rather than after. keep_rules probes the
    rules the findings name all the same."""
    if connection.vendor != "postgresql" or rules.described < PACK_MIN or rules:
        return  # (a packer must see every rule: none may have been read before it)
    with connection.cursor() as cursor:
        if not _stored_rules(cursor, ",".join(rules.sample)):
            rules.sink = RulePacker()


def keep_rules(connection: BaseDatabaseWrapper, rules: Rules) -> None:
    """The rules an upload's findings refer to (`rules` maps each digest to its row), in the
    upload's transaction: those not stored yet are stored as rows, or packed when there are
    at least PACK_MIN of them on PostgreSQL."""
    if not rules:
        return
    if connection.vendor != "postgresql":
        _insert_embedded(connection, rules)
        return
    with connection.cursor() as cursor:
        listed = ",".join(rules)
        rule_set = _rule_set_digest(listed) if len(rules) >= PACK_MIN else None
        if rule_set is not None:
            cursor.execute(_RULE_SET_STORED, [rule_set])
            if cursor.fetchone() is not None:
                return  # the same rules as an upload before, which stored them all
        # Packed as read or not (pack_as_read: the sample of the rules the log describes),
        # the rules its findings name are probed (a Semgrep log describes a registry's rules
        # and names a few, stored already).
        new = _new_rules(cursor, rules, listed)
        if rule_set is not None:
            # Committed with what follows, which stores the rules not stored yet.
            cursor.execute(_RULE_SET_ADD, [rule_set])
        if len(new) < PACK_MIN:
            _store_new(connection, cursor, new)
            return
        packer = rules.sink
        if not isinstance(packer, RulePacker) or len(new) < len(rules):
            # Not packed as read, or some were stored after all (its packer has them all).
            packer = RulePacker()
            for row in new:
                packer.add(row)
        # By COPY too: as a query parameter, Django's client-side binding would send the
        # megabytes of a pack as hex in the statement's text.
        columns = (("rules", "int4"), ("data", "bytea"))
        _copy(cursor, "findings_scannerrulepack", columns, packer.packs())


class RulePacker:
    """Rules into packs as they come (Rules.sink): each pack one zstd frame of the rules'
    JSON texts one after the other, then a newline and an index line, [[digest, rule_id,
    length], ...] (read back by _unpacked), of at most PACK_MAX_BYTES of rules.

    Level 1: 120 MB of rules in ~0.15 s of CPU, to a tenth to a quarter of their size (a
    help text repeats its description three times), on zstd's own threads (threads=-1), which
    take the rules handed to them while this process reads the next results and PostgreSQL
    merges the findings. On two busy cores the reader still spends ~0.2 s of a 95,000-rule
    upload handing batches over (and waiting when zstd falls behind); a Python thread of its
    own doing the compressing measured the same, so zstd's threads it is. Handed over BATCH
    rules at a time (a list append a rule, the rest a batch): fewer calls,
    and each batch joined in memory that the allocator reuses (~0.5 MB, below its 1 MiB
    mapping threshold, gerion/memory.py). A compressor is not to be shared by threads: one
    per pack."""

    BATCH = 384

    def __init__(self) -> None:
        self._done: list[tuple[int, bytes]] = []
        self._batch: list[tuple[str, str, bytes | Raw]] = []
        self._start()

    def _start(self) -> None:
        self._compressor = zstandard.ZstdCompressor(level=1, threads=-1).compressobj()
        self._parts: list[bytes] = []
        self._index: _Index = []
        self._size = 0

    def add(self, row: tuple[str, str, bytes | Raw]) -> None:
        self._batch.append(row)
        if len(self._batch) >= self.BATCH:
            self._hand_over()

    def _hand_over(self) -> None:
        texts: list[bytes | Raw] = []
        for digest, rule_id, data in self._batch:
            if self._index and self._size + len(data) > PACK_MAX_BYTES:
                self._parts.append(self._compressor.compress(b"".join(texts)))
                texts = []
                self._end()
            self._index.append((digest, rule_id, len(data)))
            self._size += len(data)
            texts.append(data)
        self._parts.append(self._compressor.compress(b"".join(texts)))
        self._batch = []

    def _end(self) -> None:
        self._parts.append(self._compressor.compress(b"\n" + _pack_encoder.encode(self._index)))
        self._parts.append(self._compressor.flush())
        self._done.append((len(self._index), b"".join(self._parts)))
        self._start()

    def packs(self) -> list[tuple[int, bytes]]:
        """(rules, data) of each pack: the rules added since the last call."""
        self._hand_over()
        if self._index:
            self._end()
        done, self._done = self._done, []
        return done


def _unpacked(data: bytes) -> Rules:
    """The rows of a pack (RulePacker), each rule as a slice of the decompressed text."""
    decompressed = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    text = memoryview(decompressed)
    # JSON's own newlines are escaped in the index; a rule's JSON (an object) starts with a
    # brace. Packs of the first format (before the rules came first) start with the index.
    if decompressed[:1] == b"[":
        end = decompressed.index(b"\n")
        index, offset = text[:end], end + 1
    else:
        end = decompressed.rindex(b"\n")
        index, offset = text[end + 1 :], 0
    rules = Rules()
    for digest, rule_id, length in msgspec.json.decode(index, type=_Index):
        if "\x00" in rule_id:  # a pack written before the reader replaced them (a text column)
            rule_id = rule_id.replace("\x00", "\ufffd")
        rules[digest] = (digest, rule_id, Raw(text[offset : offset + length]))
        offset += length
    return rules


def _insert_embedded(connection: BaseDatabaseWrapper, rules: Rules) -> None:
    """`rules` as rows on the embedded SQLite run (one process, no packs), each once: a rule
    already stored under its digest is the same rule."""
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO findings_scannerrule (digest, rule_id, data) VALUES (%s, %s, %s) "
            "ON CONFLICT (digest) DO NOTHING",
            [(d, rules[d][1], bytes(rules[d][2]).decode()) for d in sorted(rules)],
        )


def rules_probe(rules: Rules) -> list[str]:
    """The digests of at most RULE_SAMPLE of `rules`, spread evenly over them in their order:
    a few rules that tell whether an upload's rules are new or known (see _new_rules)."""
    return spread(rules, len(rules))


def rules_catch_up(
    connection: BaseDatabaseWrapper = default_connection, *, vacuum: bool = False
) -> int:
    """The packs stored when this is called turned into rules (each rule once), oldest
    first, one transaction a pack; how many rules were added. A pack another process is
    turning into rules is waited for: when this returns, every rule of every upload committed
    before it was called can be read. (Packs stored meanwhile are left to the next call: a
    reader does not wait for the uploads after it.) Safe to run anywhere, any number of times
    at once; outside a transaction, so that each pack's locks end with it.

    With `vacuum` (`manage.py expandrules`, never a reader that someone waits for), the rules
    table is vacuumed after rules were added: the next upload of a set of them not seen
    before (ScannerRuleSet) looks each one up (_new_rules), and after a vacuum that look-up
    reads the index alone, the visibility map saying the rows are there for every
    transaction; before it, each fresh row too (measured: 100,000 rules just stored, 0.18 s of
    its look-up and 1.74 s in all against 0.14 s and 1.50 s after this vacuum's 0.05 s).
    Usually it reads only the pages just added; now and then PostgreSQL makes it freeze the
    whole table, which a page view must not wait for. One already running (autovacuum,
    another catch-up) has it covered: not waited for."""
    if connection.vendor != "postgresql":
        return 0  # packs are made on PostgreSQL only
    added = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM findings_scannerrulepack")
        (last,) = cursor.fetchone()
        while last is not None:
            with transaction.atomic(using=connection.alias):
                # Locked, or waited for while another catch-up has it (then it is gone, and
                # no row comes back: LIMIT applies before the wait; the next is read then).
                cursor.execute(
                    "SELECT id, data FROM findings_scannerrulepack WHERE id <= %s "
                    "ORDER BY id LIMIT 1 FOR UPDATE",
                    [last],
                )
                row = cursor.fetchone()
                if row is None:
                    cursor.execute(
                        "SELECT EXISTS (SELECT 1 FROM findings_scannerrulepack WHERE id <= %s)",
                        [last],
                    )
                    if cursor.fetchone()[0]:
                        continue
                    break
                pack_id, data = row
                rules = _unpacked(bytes(data))
                stored = _store_new(connection, cursor, _new_rules(cursor, rules))
                cursor.execute("DELETE FROM findings_scannerrulepack WHERE id = %s", [pack_id])
                added += stored
                logger.info(
                    "SARIF rules pack expanded",
                    extra={"pack_id": pack_id, "rules": len(rules), "added": stored},
                )
        if vacuum and added and not connection.in_atomic_block:
            cursor.execute("VACUUM (SKIP_LOCKED) findings_scannerrule")
    return added


def _rule_set_digest(listed: str) -> str:
    """The key of a ScannerRuleSet: the first 128 bits of the SHA-256 of the rules' digests
    as `listed` (in the log's order, comma-separated), in hex."""
    return sha256(listed.encode()).hexdigest()[:32]


def _new_rules(
    cursor: CursorWrapper, rules: Rules, listed: str | None = None
) -> list[tuple[str, str, Any]]:
    """The rows of `rules` not stored yet. A scanner's rules are seen again all together or
    not at all (a new image's CVEs, the same tool's rules on another branch): a few of them,
    spread over the upload, tell which. When none of those is stored, the rules are taken to
    be new without looking each one up (a look-up of 100,000 costs PostgreSQL ~0.2 s); else
    every one is looked up (a log of RULE_SAMPLE rules or fewer is looked up whole, once)."""
    probe = rules_probe(rules)
    stored = _stored_rules(cursor, ",".join(probe))
    if not stored:
        return list(rules.values())
    if len(probe) < len(rules):
        # Counted first: when all are stored (a scanner's rules seen before, the usual case),
        # nothing else is read back (100,000 rules: 0.06 s of the upload's Python less).
        listed = listed if listed is not None else ",".join(rules)
        cursor.execute(_STORED_COUNT, [listed])
        if cursor.fetchone()[0] == len(rules):
            return []
        stored = _stored_rules(cursor, listed)
    return [row for digest, row in rules.items() if digest not in stored]


def _stored_rules(cursor: CursorWrapper, listed: str) -> set[str]:
    # The digests as one text (hex digits, comma-separated, split by PostgreSQL), and those
    # stored already back as one text: 100,000 strings as a list parameter, or as rows, cost
    # more to send and read than the query takes.
    cursor.execute(_STORED_RULES, [listed])
    (found,) = cursor.fetchone()
    return set(found.split(",")) if found else set()


def _store_new(
    connection: BaseDatabaseWrapper, cursor: CursorWrapper, new: list[tuple[str, str, Any]]
) -> int:
    """Rules not stored yet, by binary COPY straight into the table (the JSON text as it was
    sent). Should one of them be stored after all (one the probe did not ask for, or one
    another transaction stored meanwhile), that COPY fails on the digest (once the other
    commits): then they go through a scratch table and one insert that skips what is there
    (twice the work). Returns how many were stored."""
    if not new:
        return 0
    # One order for every writer: two that store the same new rules at once wait for each
    # other's commit, in the same order, and never deadlock.
    new = sorted(new, key=itemgetter(0))
    try:
        with transaction.atomic(using=connection.alias):
            _copy(cursor, "findings_scannerrule", _RULE_COLUMNS, new)
        return len(new)
    except psycopg.errors.UniqueViolation:  # cursor.copy is not wrapped by Django
        cursor.execute(
            f"CREATE TEMP TABLE {_RULES} (digest text, rule_id text, data text) ON COMMIT DROP"
        )
        _copy(cursor, _RULES, _RULE_COLUMNS, new)  # in digest order, which the insert reads
        cursor.execute(
            f"INSERT INTO findings_scannerrule (digest, rule_id, data) "
            f"SELECT digest, rule_id, data FROM {_RULES} ON CONFLICT (digest) DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        cursor.execute(f"DROP TABLE {_RULES}")
        return inserted


# A rule's row, the JSON text sent as it is (bytea's binary form is the bytes themselves).
_RULE_COLUMNS = (("digest", "text"), ("rule_id", "text"), ("data", "bytea"))


def _copy(
    cursor: CursorWrapper, table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Any]
) -> None:
    """Rows into `table` by binary COPY, its `columns` as (name, type)."""
    cursor.cursor.adapters.register_dumper(None, BYTES_DUMPER)
    names = ", ".join(name for name, _ in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in columns])
        for row in rows:
            copy.write_row(row)
