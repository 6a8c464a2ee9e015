"""AMD SEV-SNP: ATTESTATION_REPORT v2..v5 signed by a VCEK (per chip and TCB) or a VLEK (per cloud provider),
chained through the ASK or ASVK to the pinned AMD Root Key of the product (Milan, Genoa, Turin).

abi: bytes to typed report and certificate table; verify: chain, TCB and chip binding, signature, claims;
appraise: measurement, TCB floors, VMPL, policy bits.
"""
