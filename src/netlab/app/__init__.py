"""The composition root: every service kind, the service tree, reload."""
