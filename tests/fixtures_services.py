"""Fixtures that start services (PostgreSQL with pgvector, moto S3). Owned by the db work."""
