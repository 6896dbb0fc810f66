"""tmpmail: api."""
