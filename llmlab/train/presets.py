"""Named training set-ups: model sizes and optimisation settings for `llmlab train --preset NAME`.

Each preset is a dict of `TrainConfig` fields (llmlab.train.pretrain); flags given on the
command line override them. ``shakespeare-char`` is the character-level "baby GPT" of
nanoGPT's README (4 layers, 4 heads, 128 dims, block 64, ~0.8M parameters) with an optimizer
and schedule tuned for a 2-core CPU: see bench/train.py for its wall time and validation loss.
``bert-tiny`` is a small BERT encoder pre-trained with masked LM (family bert implies
``objective="mlm"``), minutes on a 2-core CPU; `llmlab embed --model RUN` then embeds with it.
"""

PRESETS: dict[str, dict] = {
    # The anchor run: nanoGPT's CPU command uses AdamW at lr 1e-3, batch 12 x 2000 iterations (1.5M tokens).
    # Here: Muon for the blocks' matrices (AdamW at 5e-3 for embeddings, norms and biases), batches of 32
    # windows, a short warm-up, the peak rate held and then cooled down linearly over the last 40%:
    # the same validation loss from 0.57M tokens (bench/train.py).
    "shakespeare-char": dict(
        family="gpt2", n_layers=4, n_heads=4, dim=128, block_size=64, batch_size=32,
        max_iters=280, optimizer="muon", muon_lr=0.03, lr=5e-3, min_lr=5e-4, warmup=20, cooldown=0.4,
        weight_decay=0.1, beta2=0.99, eval_interval=140, eval_windows=200, sample_chars=200,
    ),
    # Seconds-scale smoke set-up for tests and a first look.
    "tiny": dict(family="gpt2", n_layers=2, n_heads=2, dim=32, block_size=32, batch_size=8,
                 max_iters=100, lr=3e-3, min_lr=3e-4, warmup=10, eval_interval=50, eval_windows=16),
    # A small Llama-style model (RoPE, RMSNorm, SwiGLU) for subword data.
    "llama-small": dict(family="llama", n_layers=6, n_heads=6, dim=384, block_size=256, batch_size=16,
                        max_iters=5000, lr=6e-4, min_lr=6e-5, warmup=200, eval_interval=500, eval_windows=64),
    # A small BERT encoder (masked LM). Only 15% of the positions carry a loss, so a step takes 64
    # windows (~600 masked tokens): with 32 windows of 64 characters the loss stayed on the unigram
    # plateau (~3.0) for 1,500 steps, with 64 it leaves it after ~500. BERT's weight decay 0.01 and beta2 0.999.
    "bert-tiny": dict(family="bert", n_layers=2, n_heads=4, dim=128, block_size=64, batch_size=64,
                      max_iters=1500, lr=3e-3, min_lr=3e-4, warmup=50, weight_decay=0.01, beta2=0.999,
                      eval_interval=250, eval_windows=100, sample_chars=8),
}
