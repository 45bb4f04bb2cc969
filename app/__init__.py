"""authmd: agent registration and discovery server (auth.md protocol, temporary accounts)."""

__version__ = "0.1.0"
