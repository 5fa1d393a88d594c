"""Test data and the scripts that regenerate it."""
