"""Shared Signals: Security Event Tokens in and out (SSF 1.0, CAEP, RISC)."""
