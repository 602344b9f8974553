"""The demo user may use the admin: to try each user's sessions and "Log out everywhere" there."""

from django.db import migrations

USERNAME = "demo"


def make_staff(apps, schema_editor, staff=True):
    apps.get_model("auth", "User").objects.filter(username=USERNAME).update(is_staff=staff, is_superuser=staff)


def unmake_staff(apps, schema_editor):
    make_staff(apps, schema_editor, staff=False)


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_demo_user")]

    operations = [
        migrations.RunPython(make_staff, unmake_staff),
    ]
