"""gunicorn settings for the back office (`gunicorn -c python:backoffice.gunicorn_conf ...`)."""

from kcc_shared.gunicorn import settings

globals().update(settings("backoffice", default_port=8002))
