"""Layer 2, what to run: study descriptions (flags, study files, presets) expanded once, at the
edge, into resolved run configurations (run.py) with their run keys."""
