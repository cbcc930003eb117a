"""The dashboard's chart: open findings per repository, stacked by severity, as plain SVG
geometry computed here and drawn by the template (no script, no external library)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from findings.models import SEVERITY_ORDER, Status
from findings.selectors import RepositoryCounts, Trends

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


# --- trends: opened vs fixed --------------------------------------------------------------------

TREND_WIDTH = 760
TREND_HEIGHT = 220
TREND_LEFT = 44  # room for the scale
TREND_BOTTOM = 28  # room for the dates
TREND_TOP = 10


@dataclass(frozen=True)
class TrendBar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the period, for the tooltip


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    opened: list[TrendBar]
    fixed: list[TrendBar]
    ticks: list[tuple[float, str]]  # (y, value) of the scale lines
    dates: list[tuple[float, str]]  # (x, label) under the bars
    baseline: float
    left: int
    empty: bool


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n that is at least `value`."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def trend_chart(trends: Trends) -> TrendChart:
    """A pair of bars per period (opened, fixed), on one scale from zero."""
    points = trends.points
    top = _nice_ceiling(max([1, *(p.opened for p in points), *(p.fixed for p in points)]))
    plot_height = TREND_HEIGHT - TREND_TOP - TREND_BOTTOM
    baseline = float(TREND_TOP + plot_height)
    slot = (TREND_WIDTH - TREND_LEFT) / max(len(points), 1)
    bar = max(slot * 0.38, 1.0)
    opened: list[TrendBar] = []
    fixed: list[TrendBar] = []
    dates: list[tuple[float, str]] = []
    for index, point in enumerate(points):
        x = TREND_LEFT + index * slot + slot * 0.1
        label = (
            f"{point.end:%b %d}"
            if point.start == point.end
            else f"{point.start:%b %d} to {point.end:%b %d}"
        )
        for series, value, offset in ((opened, point.opened, 0.0), (fixed, point.fixed, bar)):
            height = plot_height * value / top
            series.append(
                TrendBar(
                    round(x + offset, 2),
                    round(baseline - height, 2),
                    round(bar, 2),
                    round(height, 2),
                    value,
                    label,
                )
            )
        # A date under the first bar, the last, and about every fifth between.
        if index in (0, len(points) - 1) or (index % 5 == 0 and len(points) - 1 - index >= 3):
            dates.append((round(x + bar, 2), f"{point.end:%b %d}"))
    ticks = [(round(baseline - plot_height * f, 2), f"{int(top * f):,}") for f in (0, 0.5, 1)]
    return TrendChart(
        TREND_WIDTH,
        TREND_HEIGHT,
        opened,
        fixed,
        ticks,
        dates,
        baseline,
        TREND_LEFT,
        empty=not any(p.opened or p.fixed for p in points),
    )
