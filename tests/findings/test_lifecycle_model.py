"""Random sequences of scans against a plain-Python model of the lifecycle in SPEC.md: after
every upload, the counts it reports and every finding's stored state must match the model."""

import random

import pytest

from findings.models import Finding
from findings.selectors import with_last_seen
from tests.findings.conftest import documented_body, post

pytestmark = pytest.mark.django_db


class Model:
    """What SPEC.md says should happen, finding by finding."""

    def __init__(self):
        self.findings = {}  # id -> dict(active, first, last, mitigated_on, title)

    def apply(self, build, reported):
        counts = {"created": 0, "updated": 0, "reactivated": 0, "mitigated": 0}
        for fid, item in self.findings.items():
            if item["active"] and fid not in reported:
                item.update(active=False, mitigated_on=build)
                counts["mitigated"] += 1
        for fid, (title, fixed) in reported.items():
            item = self.findings.get(fid)
            if item is None:
                counts["created"] += 1
                self.findings[fid] = {
                    "active": not fixed,
                    "first": build,
                    "last": build,
                    "title": title,
                    "mitigated_on": build if fixed else None,
                }
                continue
            counts["updated"] += 1
            if not item["active"] and not fixed:
                counts["reactivated"] += 1
                item["mitigated_on"] = None
            if item["active"] and fixed:
                counts["mitigated"] += 1
                item["mitigated_on"] = build
            item.update(active=not fixed, last=build, title=title)
        return counts


@pytest.mark.parametrize("seed", range(6))
def test_random_scans_follow_the_lifecycle_model(client, writer, seed):
    rng = random.Random(seed)
    model = Model()
    universe = [f"id-{i}" for i in range(40)]
    for build_number in range(12):
        build = f"b{build_number}"
        chosen = rng.sample(universe, rng.randint(0, 30))
        reported = {fid: (rng.choice(["Title A", "Title B"]), rng.random() < 0.1) for fid in chosen}
        findings = [
            {"finding_id": fid, "title": title, "mitigated": fixed}
            for fid, (title, fixed) in reported.items()
        ]
        response = post(client, writer, documented_body(findings, build_id=build))
        assert response.status_code == 201, response.content
        expected = model.apply(build, reported)
        got = {k: response.json()[k] for k in expected}
        assert got == expected, f"seed {seed}, {build}"

        stored = {f.finding_id: f for f in with_last_seen(Finding.objects.all())}
        assert set(stored) == set(model.findings)
        for fid, item in model.findings.items():
            finding = stored[fid]
            assert finding.active == item["active"], (seed, build, fid)
            assert finding.mitigated == (not item["active"])
            assert finding.first_seen_build_id == item["first"]
            assert finding.seen_build_id == item["last"], (seed, build, fid)
            assert finding.mitigated_on_build_id == item["mitigated_on"], (seed, build, fid)
            assert finding.title == item["title"]
