"""The sla-monitor service."""
