"""Versioned policy documents: reference values, requirements, trust anchors, key-release rules."""
