"""Storage: the SQLite database and its thread, the schema's migrations, the data directory."""
