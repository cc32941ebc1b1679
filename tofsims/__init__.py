"""ToF-SIMS: fragment maps, depth profiles, 3D volumes, colocalization, sample comparison."""
