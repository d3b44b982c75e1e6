"""Package."""

__all__: list[str] = []
