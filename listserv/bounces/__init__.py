"""TODO bounces."""
