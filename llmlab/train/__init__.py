"""Training: token data on disk, the pre-training loop, optimizer groups and schedule, data parallelism.

data.py         corpus -> memory-mapped token files; random training windows
optim.py        AdamW parameter groups (decay on Linear weights only) and warm-up + cosine schedule
pretrain.py     causal-LM pre-training of a decoder, checkpoints and exact resume
distributed.py  torchrun / DistributedDataParallel set-up
presets.py      named model + optimisation settings
"""
