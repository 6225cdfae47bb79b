"""Chunks to vectors to immutable index snapshots to hits."""
