"""One module per protocol, each a Protocol/Factory pair."""
