"""Loading the official LIRA, InternVL2 and OMG-Seg weight files into the plain PyTorch model."""
