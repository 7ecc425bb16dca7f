"""The `payments.retry_payment` permission: confirm a failed payment again from the admin.

A data migration because Payment's Meta belongs to another module; the permission is attached
to Payment's content type, so `user.has_perm("payments.retry_payment")` works as usual."""

from django.db import migrations

CODENAME = "retry_payment"
NAME = "Can retry failed payments"


def add_permission(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label="payments", model="payment")
    Permission.objects.get_or_create(
        content_type=content_type, codename=CODENAME, defaults={"name": NAME}
    )


def remove_permission(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="payments", codename=CODENAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0003_webhook_event"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(add_permission, remove_permission)]
