"""The dashboard's chart: open findings per repository, stacked by severity, as plain SVG
geometry computed here and drawn by the template (no script, no external library)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from findings.models import SEVERITY_ORDER, Status
from findings.selectors import RepositoryCounts

WIDTH = 760
LABEL_WIDTH = 230
TOTAL_WIDTH = 60
BAR_HEIGHT = 22
ROW_GAP = 10
TOP = 8
MAX_ROWS = 15


@dataclass(frozen=True)
class Segment:
    severity: str
    count: int
    x: float
    width: float
    href: str


@dataclass(frozen=True)
class Bar:
    repository_name: str
    label: str
    y: float
    text_y: float
    total: int
    total_x: float
    href: str
    segments: list[Segment]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    hidden_repositories: int


def list_url(**params: str) -> str:
    return reverse("finding-list") + "?" + urlencode({**params, "status": Status.ACTIVE.value})


def open_findings_chart(rows: list[RepositoryCounts]) -> Chart:
    shown = rows[:MAX_ROWS]
    longest = max((row.total for row in shown), default=0) or 1
    scale = (WIDTH - LABEL_WIDTH - TOTAL_WIDTH) / longest
    bars = []
    for index, row in enumerate(shown):
        y = TOP + index * (BAR_HEIGHT + ROW_GAP)
        x = float(LABEL_WIDTH)
        segments = []
        for severity in SEVERITY_ORDER:
            count = row.counts[severity]
            if not count:
                continue
            width = count * scale
            segments.append(
                Segment(
                    severity,
                    count,
                    round(x, 2),
                    round(width, 2),
                    list_url(repository_name=row.repository_name, severity=severity),
                )
            )
            x += width
        label = row.repository_name
        if len(label) > 30:
            label = "…" + label[-29:]
        bars.append(
            Bar(
                repository_name=row.repository_name,
                label=label,
                y=y,
                text_y=y + BAR_HEIGHT * 0.7,
                total=row.total,
                total_x=round(x + 6, 2),
                href=list_url(repository_name=row.repository_name),
                segments=segments,
            )
        )
    height = TOP * 2 + max(len(bars), 1) * (BAR_HEIGHT + ROW_GAP)
    return Chart(WIDTH, height, bars, max(0, len(rows) - MAX_ROWS))
