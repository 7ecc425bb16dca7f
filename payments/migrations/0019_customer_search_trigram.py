"""Substring search on customer name and e-mail, served on PostgreSQL by pg_trgm GIN indexes.

The indexes hold UPPER(column) because the search is Django's `icontains`, which PostgreSQL
runs as `UPPER(col::text) LIKE UPPER('%term%')`: an index on the same expression serves it
(a Bitmap Index Scan), whatever part of the name or e-mail the term is. SQLite gets nothing
(its LIKE scans; see backoffice/changelist.py).
pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import migrations
from django.db.models.functions import Upper

from backoffice.postgres_operations import AddIndexOnPostgreSQL, TrigramExtensionOnPostgreSQL


class Migration(migrations.Migration):
    dependencies = [("payments", "0018_stripe_id_upper_indexes")]

    operations = [
        TrigramExtensionOnPostgreSQL(),
        AddIndexOnPostgreSQL(
            model_name="customer",
            index=GinIndex(
                OpClass(Upper("name"), name="gin_trgm_ops"), name="customer_name_trgm_idx"
            ),
        ),
        AddIndexOnPostgreSQL(
            model_name="customer",
            index=GinIndex(
                OpClass(Upper("email"), name="gin_trgm_ops"), name="customer_email_trgm_idx"
            ),
        ),
    ]
