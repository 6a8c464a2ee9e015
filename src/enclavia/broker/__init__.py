"""Key broker: attestation-gated key release under versioned policy, with an audit ledger."""
