"""TODO membership."""
