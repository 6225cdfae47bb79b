"""Promotion gate, approval watcher and nightly eval schedule (issue #4; none defined yet)."""
