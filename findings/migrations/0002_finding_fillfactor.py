"""Leave room on each page of findings_finding so that the rows an upload does rewrite (new
content, last sighting) can often be updated in place (HOT), without touching the indexes.
PostgreSQL only."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE findings_finding SET (fillfactor = 80)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE findings_finding RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("findings", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
