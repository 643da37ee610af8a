"""Django's ORM: the primary key is a database default (Django >= 5.0 `db_default`), read back
by INSERT ... RETURNING on save() and bulk_create().

Run by tests/tests/clients.rs with SNOWFLAKE_DSN set; quoted in docs/clients.md.
"""

import os
from urllib.parse import urlsplit

import django
from django.conf import settings

dsn = urlsplit(os.environ["SNOWFLAKE_DSN"])
settings.configure(
    INSTALLED_APPS=[],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",  # psycopg 3
            "HOST": dsn.hostname,
            "PORT": dsn.port,
            "NAME": dsn.path.lstrip("/"),
            "USER": dsn.username,
            # Behind PgBouncer in transaction mode: no server-side prepared statements.
            "OPTIONS": {"prepare_threshold": None},
        }
    },
)

django.setup()

from django.db import connection, models  # noqa: E402


class SnowflakeIdField(models.BigAutoField):
    """A primary key that the database fills in (DEFAULT snowflake_nextval(), from db_default)
    and Django reads back with RETURNING, on save() and on bulk_create(). An AutoField subclass
    because Django leaves exactly those out of an INSERT while the object's pk is None and assigns
    what comes back; internal type BigIntegerField so the DDL is a plain bigint, without
    IDENTITY; a new object's pk None rather than Django's DatabaseDefault placeholder, which
    bulk_create() would take for a key already set."""

    def get_internal_type(self):
        return "BigIntegerField"

    def get_default(self):
        return None


class AuditLog(models.Model):
    id = SnowflakeIdField(primary_key=True, db_default=models.Func(function="snowflake_nextval"))
    ref = models.TextField(unique=True)
    note = models.TextField()

    class Meta:
        app_label = "recipes"  # a one-file recipe: no installed app, no migrations
        db_table = "audit_django"


class PlainAuditLog(models.Model):
    # The obvious declaration: save() reads the key back, bulk_create() does not (the objects
    # keep Django's DatabaseDefault placeholder as their pk).
    id = models.BigIntegerField(primary_key=True, db_default=models.Func(function="snowflake_nextval"))
    note = models.TextField()

    class Meta:
        app_label = "recipes"
        db_table = "audit_django_plain"


from common import check_against_server, report  # noqa: E402

with connection.schema_editor() as editor:
    editor.create_model(AuditLog)  # id bigint DEFAULT snowflake_nextval() PRIMARY KEY
    editor.create_model(PlainAuditLog)

rows: dict[str, int] = {}
one = AuditLog(ref="django-0", note="one")
one.save()  # INSERT ... RETURNING id
assert isinstance(one.id, int), f"save() did not read the key back: {one.id!r}"
rows[one.ref] = one.id

# bulk_create: one INSERT ... RETURNING id per batch_size rows (Django 5.2 on PostgreSQL:
# INSERT ... SELECT * FROM UNNEST(arrays)).
made = AuditLog.objects.bulk_create(
    [AuditLog(ref=f"django-{i}", note="batch") for i in range(1, 501)], batch_size=500
)
rows.update({o.ref: o.id for o in made})

plain = PlainAuditLog(note="one")
plain.save()
assert isinstance(plain.id, int) and PlainAuditLog.objects.get(pk=plain.id).note == "one"
plain_made = PlainAuditLog.objects.bulk_create([PlainAuditLog(note="batch") for _ in range(3)])
assert not any(isinstance(o.id, int) for o in plain_made), "bulk_create now reads db_default keys back"
print("django-plain-bulk-create-keys-unset", len(plain_made))

with connection.cursor() as cur:
    check_against_server(cur, "audit_django", rows)
report("audit_django", rows)
