# Each index of findings_finding costs every inserted finding, and an upload inserts up to
# 100,000 (bench/ingest.py): the scan-type index (scan type filters ride on the others) and
# the index on who triaged go. With only changed findings rewritten by an upload, pages are
# filled (fillfactor 100) rather than kept 20% empty for in-place updates: a new stream's rows
# take a quarter fewer pages to write. PostgreSQL only for the fillfactor.

from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE findings_finding RESET (fillfactor)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE findings_finding SET (fillfactor = 80)")


class Migration(migrations.Migration):
    dependencies = [
        ("findings", "0004_content_hash_bigint"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="finding", name="finding_scan_type_idx"),
        migrations.AlterField(
            model_name="finding",
            name="triaged_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
