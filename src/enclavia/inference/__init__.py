"""Model runtimes used inside the enclave."""
