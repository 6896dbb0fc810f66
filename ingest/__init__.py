"""tmpmail: ingest."""
