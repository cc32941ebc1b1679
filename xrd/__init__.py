"""XRD: read powder patterns, Rietveld refinement with dopant site occupancy."""
