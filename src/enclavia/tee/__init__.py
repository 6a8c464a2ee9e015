"""Attester backends: produce evidence for given report_data inside the TEE."""
