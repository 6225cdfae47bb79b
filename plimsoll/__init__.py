"""Plimsoll core library: plain Python, no Dagster import (see DESIGN.md, "Layers")."""

__version__ = "0.1.0"
