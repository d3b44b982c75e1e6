"""The backoffice service."""
