"""What every protocol shares: config, events, listeners, limits."""
