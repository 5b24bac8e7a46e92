"""Training: token data on disk, the pre-training loop, optimizer groups and schedule, data parallelism.

data.py         corpus -> memory-mapped token files; random training windows
optim.py        AdamW parameter groups (decay on Linear weights only), Muon, warm-up + cosine / cool-down schedules
pretrain.py     pre-training: causal LM for decoders, masked LM for encoders; checkpoints and exact resume
distributed.py  torchrun / DistributedDataParallel set-up
presets.py      named model + optimisation settings
"""
