"""The only package that imports cryptography.hazmat: HPKE, OHTTP, binary HTTP, AEAD, signing."""
