"""Pinned vendor roots (PEM/DER constants). Each module names its source and fingerprint; tests
recheck them."""
