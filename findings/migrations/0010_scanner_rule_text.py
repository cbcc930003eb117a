# A large Trivy log describes a rule per CVE: ~95,000 rules for 100,000 results, 120 MB of
# JSON (bench/ingest.py). Each new rule paid for PostgreSQL parsing its JSON again (`json`;
# the reader has parsed the body already) and for a second index on its digest, the
# varchar_pattern_ops one Django adds to text keys for LIKE, which nothing runs on digests.
# Both go: the rule is kept as the text the scanner sent, and looked up by equality.

from django.db import migrations, models

LIKE_INDEX = "findings_scannerrule_digest_78ddace4_like"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} "
            "ON findings_scannerrule (digest varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("findings", "0009_staff_triage"),
    ]

    operations = [
        migrations.AlterField(
            model_name="scannerrule",
            name="data",
            field=models.TextField(),
        ),
        migrations.RunPython(forwards, backwards),
    ]
