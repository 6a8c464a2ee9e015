"""Release authority: reproducible measurement, signed release records, transparency log, rollout."""
