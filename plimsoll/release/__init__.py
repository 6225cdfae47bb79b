"""The MLflow registry, lineage, policy, gate, promotion, rollback, aliases, ledger."""
