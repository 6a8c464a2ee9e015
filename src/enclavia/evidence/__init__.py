"""Compliance evidence: the data-flow picture, the auditor's report, its signature and ledger receipt."""
