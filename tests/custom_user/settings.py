"""A site with its own user model and user admin (tests/test_session_admin.py runs it in a subprocess)."""

import os

SECRET_KEY = "cache-sessions-custom-user"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "cache_sessions",
    "tests.custom_user",  # after cache_sessions: its user admin is patched by cache_sessions' ready()
]
AUTH_USER_MODEL = "custom_user.Account"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "cache_sessions.cache.RedisCache",
        "LOCATION": os.environ["CUSTOM_USER_REDIS_URL"],
        "OPTIONS": {"USER_SESSIONS": True, "USER_SESSION_METADATA": True},
    },
}
SESSION_ENGINE = "cache_sessions.backend"
SESSION_CACHE_ALIAS = "sessions"
ROOT_URLCONF = "tests.custom_user.urls"
MIDDLEWARE = [
    "cache_sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
