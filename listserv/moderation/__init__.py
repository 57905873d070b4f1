"""TODO moderation."""
