"""Untrusted HTTP front: relays ciphertext to the enclave over one Unix socket. Never decrypts."""
