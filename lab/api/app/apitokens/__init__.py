"""API tokens for machine clients, kept apart from `inventory` so its migrations stay the runbook's."""
