"""The decision service's runtime: sessions, challenges, policy versions, over a `Store`."""
