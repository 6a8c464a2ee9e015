"""Content-free logging, metrics and trace context. Usable from every layer."""
