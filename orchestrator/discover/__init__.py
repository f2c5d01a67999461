"""Component discovery: every service the target runs becomes a watched component."""
