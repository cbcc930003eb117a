# Uploads read and write findings in bulk (findings.readers, findings.merge):
# - the content digest becomes a 64-bit integer (findings.normalize.content_hash). Old digests
#   cannot be converted: they are reset, and the next upload of each stream refreshes them;
# - the raw data is kept as the JSON text that was sent (`json`, not `jsonb`).

import findings.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("findings", "0003_finding_repo_rank_index"),
    ]

    operations = [
        migrations.RemoveField(model_name="finding", name="content_hash"),
        migrations.AddField(
            model_name="finding",
            name="content_hash",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="finding",
            name="raw",
            field=findings.models.RawJSONField(default=dict),
        ),
    ]
