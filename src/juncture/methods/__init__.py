"""Authentication methods: each verifies one kind of proof and says what it is worth (AAL, amr)."""
