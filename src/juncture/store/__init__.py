"""Storage: protocols the runtime depends on, and their backends (SQLite now)."""
