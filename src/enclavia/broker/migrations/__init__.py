"""Alembic migrations of the broker schema (applied at start by ``Store.migrate``)."""
