"""tmpmail: bus."""
