from django.contrib import admin

from .models import Account


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The site's own admin of its user model, registered by an app listed after cache_sessions."""

    list_display = ["email", "is_staff"]
    fields = ["email", "is_staff", "is_active"]
