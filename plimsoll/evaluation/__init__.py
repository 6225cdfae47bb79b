"""The metric table, eval sets, scoring, red team, the eval report and registry."""
