"""The store: tables, migrations, the hash-chained event log and the one interface over SQLite and PostgreSQL."""
