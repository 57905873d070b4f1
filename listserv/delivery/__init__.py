"""TODO delivery."""
