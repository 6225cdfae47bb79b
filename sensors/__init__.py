"""Promotion gate and approval sensors, and the rollback job."""
