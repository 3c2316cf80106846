"""Local multi-site simulation and the synthetic hospital site generator."""
