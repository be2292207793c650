"""Package version (read by hatchling and recorded in every manifest)."""

__version__ = "0.1.0"
