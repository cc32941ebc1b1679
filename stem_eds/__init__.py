"""STEM-EDS: element maps, quantification, homogeneity."""
