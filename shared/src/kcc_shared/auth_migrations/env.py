"""Alembic's entry point for the auth history (configured in kcc_shared.migrations)."""

from alembic import context

from kcc_shared.migrations import run_environment

run_environment(context)
