"""Loading LIRA's official weight files: InternVL2 folders, `LIRA-*.pth` deltas and OMG-Seg files."""
