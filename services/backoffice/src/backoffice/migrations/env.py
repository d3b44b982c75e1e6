"""Alembic's entry point for this history: everything is configured in kcc_shared.migrations."""

from alembic import context
from kcc_shared.migrations import run_environment

run_environment(context)
