"""AWS Nitro Enclaves: NSM attestation documents (COSE_Sign1, ES384) chained to the pinned AWS Nitro root G1.

abi: bytes to a typed document (strict CBOR, AWS field limits); verify: algorithm, chain, signature, claims;
appraise: PCR reference values.
"""
