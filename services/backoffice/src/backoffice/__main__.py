"""`python -m backoffice serve|consume|openapi` (the same commands as `kcc backoffice`)."""

from backoffice.commands import backoffice_group

backoffice_group(prog_name="backoffice")
