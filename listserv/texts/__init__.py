"""TODO texts."""
