"""tmpmail: streams."""
