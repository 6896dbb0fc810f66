"""tmpmail: store."""
