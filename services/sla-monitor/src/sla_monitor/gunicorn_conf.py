"""gunicorn settings for the SLA monitor's web side (`kcc sla serve`)."""

from kcc_shared.gunicorn import settings

globals().update(settings("sla-monitor", default_port=8003))
