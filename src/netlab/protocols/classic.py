"""Classic inetd services (placeholder until implemented)."""
