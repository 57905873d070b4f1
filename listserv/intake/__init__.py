"""TODO intake."""
