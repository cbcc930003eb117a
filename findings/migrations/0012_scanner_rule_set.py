# The rule sets of large SARIF uploads, all stored: the next upload of the same set skips
# the look-up of each rule (findings.rules.keep_rules).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("findings", "0011_scanner_rule_pack"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScannerRuleSet",
            fields=[
                ("digest", models.CharField(max_length=32, primary_key=True, serialize=False)),
            ],
        ),
    ]
