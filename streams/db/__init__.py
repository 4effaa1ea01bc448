"""The SQL read model: tables, migrations and the batch repository (SQLAlchemy 2.x)."""
