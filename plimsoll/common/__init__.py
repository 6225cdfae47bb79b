"""Shared machinery: errors, hashing, settings, file readers, SQL helpers."""
