# Rules of a large SARIF upload are kept as packs, turned into rows later (findings.rules).
# A pack is compressed already: PostgreSQL is told not to try again (STORAGE EXTERNAL).

from django.db import migrations, models


def external_storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE findings_scannerrulepack ALTER COLUMN data SET STORAGE EXTERNAL"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("findings", "0010_scanner_rule_text"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScannerRulePack",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("rules", models.PositiveIntegerField()),
                ("data", models.BinaryField()),
            ],
        ),
        migrations.RunPython(external_storage, migrations.RunPython.noop),
    ]
