"""The line chat: a transport-free hub, its commands, and the telnet/netcat protocol."""
