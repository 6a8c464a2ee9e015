"""The trusted app: boot, gateway, inner routes. Runs only inside the enclave process."""
