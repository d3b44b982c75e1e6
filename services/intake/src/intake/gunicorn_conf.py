"""gunicorn settings for the intake (`gunicorn -c python:intake.gunicorn_conf ...`)."""

from kcc_shared.gunicorn import settings

globals().update(settings("intake", default_port=8001))
