"""Fine-tuning scripts that reproduce LIRA's weights: stage 1 (projector pretraining) and stage 2 (fine-tuning).

Entry points: `python -m models.lira.training.train --config stage2 ...` (training, one process or under
`torchrun` / `accelerate launch`) and `python -m models.lira.training.export RUN_DIR` (official `.pth` layout).
"""
