"""TODO mail."""
