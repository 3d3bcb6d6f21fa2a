"""Governance: the policy every model must satisfy and the audit bundle that proves it.

Pure modules (no Dagster import); the schema of the audit bundle is ``governance/audit_bundle.schema.json``.
"""
