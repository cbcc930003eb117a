"""A database trigger so that no code path, ORM or raw SQL, can un-revoke a key."""

from django.db import migrations

POSTGRESQL = """
CREATE FUNCTION apikeys_revocation_is_final() RETURNS trigger AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'API key % is revoked; revocation cannot be undone', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER apikeys_revocation_is_final BEFORE UPDATE ON apikeys_apikey
    FOR EACH ROW EXECUTE FUNCTION apikeys_revocation_is_final();
"""
POSTGRESQL_REVERSE = """
DROP TRIGGER IF EXISTS apikeys_revocation_is_final ON apikeys_apikey;
DROP FUNCTION IF EXISTS apikeys_revocation_is_final();
"""
SQLITE = """
CREATE TRIGGER apikeys_revocation_is_final BEFORE UPDATE OF revoked_at ON apikeys_apikey
FOR EACH ROW WHEN OLD.revoked_at IS NOT NULL
    AND (NEW.revoked_at IS NULL OR NEW.revoked_at <> OLD.revoked_at)
BEGIN
    SELECT RAISE(ABORT, 'API key is revoked; revocation cannot be undone');
END;
"""
SQLITE_REVERSE = "DROP TRIGGER IF EXISTS apikeys_revocation_is_final;"


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE, params=None)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
