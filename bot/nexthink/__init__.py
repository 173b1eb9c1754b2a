"""The Nexthink Workflows API: models, token, client and errors."""
