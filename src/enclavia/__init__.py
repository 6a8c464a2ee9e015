"""enclavia: confidential AI inference, retrieval and key release inside attested enclaves."""

__version__ = "0.1.0"
