"""tmpmail: deploy."""
