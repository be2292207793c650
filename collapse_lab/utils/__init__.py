"""Small shared utilities: seeding, provenance."""
