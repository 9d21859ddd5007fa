"""Context enrichers: what is observed about a request (IP, network, geo, device, reputation)."""
