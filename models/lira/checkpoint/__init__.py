"""Loading the official weight files (InternVL2 folders, `LIRA-*.pth` deltas, OMG-Seg files) into the model."""
