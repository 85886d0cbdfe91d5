"""The chat's IRC front-end: irssi, WeeChat and HexChat in the same rooms as everyone else."""
