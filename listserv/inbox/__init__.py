"""TODO inbox."""
