"""Create the demo user ``demo`` / ``demo``."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations

USERNAME = "demo"


def create_demo_user(apps, schema_editor):
    User = apps.get_model("auth", "User")
    if not User.objects.filter(username=USERNAME).exists():
        User.objects.create(username=USERNAME, password=make_password("demo"))


def delete_demo_user(apps, schema_editor):
    apps.get_model("auth", "User").objects.filter(username=USERNAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_demo_user, delete_demo_user),
    ]
