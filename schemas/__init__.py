"""tmpmail: schemas."""
