"""Loops in chat answers, with and without a repetition penalty.

SmolLM2-135M-Instruct as `llmlab chat` runs it (int4, temperature 0.2, top-p 0.9) answers held-out
instructions of ../shared/data/instructions (the 10% that bench/finetune.py holds out: a seeded
shuffle, seed 0), one seed per question, the same for every setting, at most --max-new-tokens
tokens. For each repetition penalty (CTRL, over the last 64 tokens): the share of answers that run
to the token limit, the share that repeat a phrase (some 8 tokens 3 times or more: a loop), ROUGE-L
F1 against the reference answers (bench/inspect.py's), answer length and decoding speed.

    .venv/bin/python bench/chat.py [--questions 60] [--penalties 1.0,1.1,1.2] [--max-new-tokens 256]
"""

import os
import sys

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rouge_l():
    """bench/inspect.py's ROUGE-L (imported by path: the file shares its name with a stdlib module)."""
    spec = importlib.util.spec_from_file_location("bench_inspect", REPO / "bench" / "inspect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rouge_l


def repeats_a_phrase(ids: list[int], n: int = 8, times: int = 3) -> bool:
    """Whether some ``n`` consecutive tokens occur ``times`` times or more."""
    grams = Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))
    return bool(grams) and max(grams.values()) >= times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--penalties", default="1.0,1.1,1.2")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    path = args.data / "instructions" / "instruction-data.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found; this benchmark needs ../shared/data")
    torch.set_num_threads(args.threads)

    from llmlab.generate import ChatTemplate, GenerationConfig, complete
    from llmlab.train.sft import read_conversations, split
    from llmlab.weights.registry import load_decoder

    score = rouge_l()
    conversations = read_conversations(path)
    _, held_out = split(list(range(len(conversations))), 0.1, seed=0)
    chats = [conversations[i] for i in held_out[:args.questions]]
    bundle = load_decoder("smollm2", precision="int4")
    tok = bundle.tokenizer
    template = ChatTemplate(bundle.chat_template, tok.bos_token or "", tok.eos_token or "")
    prompts = [template.render(chat[:-1], add_generation_prompt=True) for chat in chats]
    refs = [chat[-1]["content"] for chat in chats]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(chats)} held-out instructions, "
          f"SmolLM2-135M-Instruct int4, temperature 0.2, top-p 0.9, at most {args.max_new_tokens} new tokens")
    print("\n| repetition penalty | runs to the limit | repeats a phrase | ROUGE-L | answer tokens | tokens/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    results, examples = {}, {}
    for penalty in (float(p) for p in args.penalties.split(",")):
        limit = loops = tokens = 0
        seconds, answers = 0.0, []
        for seed, prompt in enumerate(prompts):
            cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=0.2, top_p=0.9, seed=seed,
                                   repetition_penalty=penalty)
            start = time.perf_counter()
            c = complete(bundle.model, tok, prompt, cfg)
            seconds += time.perf_counter() - start
            limit += c.finish_reason == "length"
            loops += repeats_a_phrase(c.ids)
            tokens += len(c.ids)
            answers.append(c.text.strip())
        rouge = sum(score(a, r) for a, r in zip(answers, refs)) / len(refs)
        n = len(prompts)
        results[penalty] = {"runs_to_limit": limit / n, "repeats_a_phrase": loops / n, "rouge_l": rouge,
                            "answer_tokens": tokens / n, "tokens_per_second": tokens / seconds}
        examples[penalty] = answers
        print(f"| {penalty:g} | {limit / n:.3f} | {loops / n:.3f} | {rouge:.4f} | {tokens / n:.0f} | "
              f"{tokens / seconds:.0f} |", flush=True)
    first = list(examples)
    looped = [i for i, a in enumerate(examples[first[0]]) if repeats_a_phrase(tok.encode(a, special=False))]
    for i in looped[:3]:
        print(f"\n--- {chats[i][0]['content'][:160]!r}")
        for penalty in first:
            print(f"penalty {penalty:g}: {examples[penalty][i][:240]!r}")
    if args.json:
        args.json.write_text(json.dumps({"questions": len(prompts), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
