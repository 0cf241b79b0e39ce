"""Transport security, caller identity and authorization policy."""
