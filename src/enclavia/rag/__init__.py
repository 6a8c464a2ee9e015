"""Encrypted document store, vector index and retrieval; runs only inside the enclave."""
