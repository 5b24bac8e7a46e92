"""Experiment `context-window`: a conversation that outgrows the model's context.

Claim (primer, "chat models"): a model reads at most its context window of tokens (SmolLM2: 8,192).
A chat keeps re-sending the whole conversation, so it grows every turn until it no longer fits; then
something must go. llmlab's policy (llmlab.generate.chat.ChatSession) drops the oldest
user/assistant turns, keeps the system prompt, and reports how many went.

Nothing is generated: the conversation is canned (long user and assistant turns written below),
and each user turn goes through the real `ChatSession.send`, which renders SmolLM2's own chat
template (GGUF ``tokenizer.chat_template``), tokenizes with SmolLM2's BPE, applies the policy and
returns the prompt ids; its answer stream is never started, and the canned answer joins the
conversation as a streamed one would. The model itself is not loaded: the session only needs
``model.config.max_seq_len``, which comes from the same GGUF metadata. Quick: a pretend context of
1,024 tokens with 128 new tokens reserved; full: the real 8,192 with 512 (the `llmlab chat` default).
Test: tests/experiments/test_experiments.py::test_context_window.
"""

import random
import re
from types import SimpleNamespace

from llmlab.experiments import EXPERIMENTS
from llmlab.experiments.common import Report, new_figure, png, setup_block, table

NAME = "context-window"
CLAIM = EXPERIMENTS[NAME].claim
SYSTEM = "You are a patient gardening coach. Answer with practical, step-by-step advice."
QUESTIONS = [
    "I have a small sunny backyard and have never grown vegetables. Where should I start?",
    "How do I know if my soil is any good, and what can I do if it is poor?",
    "Which vegetables are easiest for a beginner, and which should I avoid in my first year?",
    "Should I build raised beds or plant straight into the ground?",
    "How often should I water, and is it better in the morning or the evening?",
    "What is the simplest way to keep slugs and aphids away without sprays?",
    "When should I sow seeds indoors, and when can the seedlings go outside?",
    "How much space do tomatoes, beans and courgettes each need?",
    "What should I do with all the weeds that keep coming back?",
    "Is compost worth the effort, and how do I start a compost heap?",
    "How can I keep harvesting salad leaves all summer instead of all at once?",
    "What should I plant in autumn so that the beds are not empty over winter?",
]
PARAGRAPHS = [
    "Start small: one bed of about three square metres is enough for a first season, and it is far better to "
    "look after a small plot well than to lose a large one to weeds by July. Pick the sunniest spot you have, "
    "ideally one that gets six or more hours of direct light, close to a tap so that watering is never a chore. "
    "Mark the bed out with string, lift the turf, and loosen the soil underneath with a fork to a spade's depth.",
    "Good soil crumbles in your hand, smells earthy and is full of worms. Squeeze a damp handful: if it forms a "
    "sticky ball that will not break apart, it is heavy clay; if it falls through your fingers, it is sandy. "
    "Both are improved the same way, by adding organic matter every year. Spread five centimetres of compost or "
    "well-rotted manure over the surface in autumn and let the worms pull it down over the winter months.",
    "For a first year, choose crops that forgive mistakes: radishes, lettuce, runner beans, courgettes, "
    "potatoes and garlic all grow quickly and reliably. Herbs such as parsley and chives are easy too and save "
    "money in the kitchen. Leave cauliflower, celery and melons for later, because they need steady conditions, "
    "careful feeding and a long, warm season, and a failed crop in the first summer can be discouraging.",
    "Raised beds warm up earlier in spring, drain well after heavy rain and keep paths and growing areas "
    "clearly apart, so you never tread on the soil you grow in. They cost more to build and dry out faster in "
    "hot weather. Planting straight into the ground is cheaper and holds moisture better. On heavy clay or "
    "where the ground is stony, raised beds are usually worth the effort; on good loam, open ground is fine.",
    "Water deeply and less often rather than a little every day: a thorough soaking twice a week encourages "
    "roots to grow down, where the soil stays moist. Morning is best, because the leaves dry off in the sun "
    "and fungal diseases have less chance to take hold. Aim the water at the base of the plants, not over the "
    "leaves, and check the soil with a finger before watering; if it is damp a few centimetres down, wait.",
    "Slugs are easiest to control by hand: go out with a torch on a damp evening and collect them. Beer traps "
    "sunk into the soil, copper tape around pots and a rough mulch of crushed shells all help. Aphids are "
    "eaten by ladybirds, lacewings and birds, so plant flowers such as marigolds and calendula nearby to "
    "attract them. A strong jet of water knocks aphids off the stems, and most plants recover on their own.",
    "Sow tomatoes, peppers and aubergines indoors six to eight weeks before the last expected frost, on a "
    "bright windowsill. Harden the seedlings off for a week or two by putting them outside during the day and "
    "bringing them in at night, then plant them out once the nights stay above ten degrees. Beans, courgettes "
    "and squash grow so fast that they can be sown indoors only three or four weeks before planting out.",
    "Tomatoes grown as cordons need about forty-five centimetres between plants and a tall cane each; bush "
    "varieties need a little more room. Runner beans are sown in double rows with twenty centimetres between "
    "plants, climbing up a frame of canes. A single courgette plant can spread to a metre across, so two "
    "plants are plenty for a family. Crowded plants compete for light and water and suffer more diseases.",
    "Annual weeds such as chickweed are easy: hoe them off on a dry, sunny day and leave them to wither. "
    "Perennial weeds like bindweed and couch grass regrow from every scrap of root, so dig them out carefully "
    "and do not compost the roots. A thick mulch of compost or straw between the rows smothers seedlings, and "
    "a few minutes of weeding every week is much less work than a whole afternoon once a month.",
    "Compost is the cheapest way to improve any soil. Mix green material such as grass clippings, vegetable "
    "peelings and spent plants with roughly the same amount of brown material such as cardboard, straw and "
    "fallen leaves. Keep the heap as damp as a wrung-out sponge and turn it every few weeks to let air in. "
    "Depending on the weather, it will be dark, crumbly and ready to use in six months to a year.",
    "Sow a short row of lettuce or other salad leaves every two or three weeks from early spring until late "
    "summer, instead of one long row at once. Pick the outer leaves of each plant and leave the centre to keep "
    "growing; many varieties sold as cut-and-come-again will regrow three or four times. In the heat of summer "
    "sow in light shade and keep the soil moist, because lettuce runs to seed quickly when it is dry.",
    "In early autumn plant garlic cloves, overwintering onions and broad beans, which grow slowly through the "
    "cold months and give an early harvest. Kale, leeks and winter cabbages sown in summer will stand in the "
    "ground until they are needed. Any bed left empty can be sown with a green manure such as field beans or "
    "winter rye, which protects the soil from heavy rain and is dug in to feed it in spring.",
]


def conversation(turns: int, paragraphs_per_answer: int, seed: int) -> list[tuple[str, str]]:
    """(user, assistant) texts; each carries its turn number, so a prompt shows which turns it holds."""
    rng = random.Random(seed)
    out = []
    for k in range(1, turns + 1):
        question = QUESTIONS[(k - 1) % len(QUESTIONS)]
        chosen = rng.sample(PARAGRAPHS, paragraphs_per_answer)
        out.append((f"[turn {k}] {question}", f"[answer {k}] " + "\n\n".join(chosen)))
    return out


def smollm2_chat():
    """SmolLM2's tokenizer, chat template and context length, from the GGUF metadata only (no weights)."""
    from llmlab import packages
    from llmlab.generate import ChatTemplate
    from llmlab.tokenize import load_tokenizer
    from llmlab.tokenize.gguf import read_gguf_metadata

    meta = read_gguf_metadata(packages.smollm2_gguf())
    tok = load_tokenizer("smollm2")
    template = ChatTemplate(meta["tokenizer.chat_template"], tok.bos_token or "", tok.eos_token or "")
    return tok, template, int(meta[f"{meta['general.architecture']}.context_length"])


def simulate(context: int, max_new_tokens: int, turns: list[tuple[str, str]], tok, template) -> list[dict]:
    """Send each canned user turn through ChatSession.send; one record per turn."""
    from llmlab.generate import ChatSession
    from llmlab.generate.generate import GenerationConfig

    model = SimpleNamespace(config=SimpleNamespace(max_seq_len=context, vocab_size=tok.vocab_size))  # all the
    # session reads of a model
    session = ChatSession(model, tok, template, system=SYSTEM, config=GenerationConfig(max_new_tokens=max_new_tokens))
    records = []
    for k, (user, answer) in enumerate(turns, start=1):
        turn = session.send(user)  # renders, tokenizes and drops old turns; generates nothing yet
        prompt = tok.decode(turn.stream.prompt_ids)
        held = sorted(int(n) for n in re.findall(r"\[turn (\d+)\]", prompt))
        records.append({"turn": k, "prompt_tokens": len(turn.stream.prompt_ids),
                        "user_tokens": len(tok.encode(user)), "answer_tokens": len(tok.encode(answer)),
                        "dropped_now": turn.dropped, "dropped_total": session.dropped, "turns_held": held,
                        "system_kept": SYSTEM in prompt})
        session.messages.append({"role": "assistant", "content": answer})  # as a finished stream does
    return records


def run(quick: bool = False, seed: int = 0) -> Report:
    tok, template, real_context = smollm2_chat()
    context, max_new, n_turns, per_answer = (1024, 128, 12, 1) if quick else (real_context, 512, 40, 3)
    records = simulate(context, max_new, conversation(n_turns, per_answer, seed), tok, template)
    budget = context - max_new
    first_drop = next((r["turn"] for r in records if r["dropped_now"]), None)
    checks = {
        "max_total_tokens": max(r["prompt_tokens"] for r in records) + max_new, "context": context,
        "oldest_first": all(r["turns_held"] == list(range(r["turns_held"][0], r["turn"] + 1)) for r in records),
        "system_always_kept": all(r["system_kept"] for r in records),
        "first_drop_turn": first_drop, "turns_dropped": records[-1]["turns_held"][0] - 1,
    }
    rows = [[r["turn"], r["user_tokens"], r["answer_tokens"], r["prompt_tokens"], r["prompt_tokens"] + max_new,
             f"{r['turns_held'][0]}-{r['turn']}", r["dropped_now"] // 2 if r["dropped_now"] else "",
             "yes" if r["system_kept"] else "NO"] for r in records]
    md = [f"# Experiment: {NAME}\n", f"Claim: {CLAIM}\n",
          setup_block(NAME, quick, seed, [
              f"model: SmolLM2-135M-Instruct's tokenizer and chat template read from its GGUF metadata (the "
              f"file says context_length = {real_context:,}); no weights loaded, nothing generated",
              f"context used here: {context:,} tokens"
              + (" (a pretend window, to keep the quick run small)" if quick else "")
              + f", {max_new} reserved for the answer, so a prompt may hold at most {budget:,} tokens",
              f"conversation: {n_turns} canned turns (questions and {per_answer}-paragraph answers written in "
              f"llmlab/experiments/context_window.py; paragraphs picked with seed {seed}), system prompt: \"{SYSTEM}\"",
              "policy: llmlab.generate.chat.ChatSession.send, unchanged: drop the oldest user+assistant pair "
              "until prompt + reserved answer fits"]),
          "## Turn by turn\n",
          table(["turn", "user tokens", "answer tokens", "prompt tokens", "+ reserved", "turns in prompt",
                 "turns dropped now", "system prompt kept"], rows),
          "\n![prompt tokens per turn](context.png)\n",
          "## What the numbers say\n",
          f"- the largest prompt plus the reserved answer is {checks['max_total_tokens']:,} tokens, "
          + ("within" if checks["max_total_tokens"] <= context else "OVER") + f" the {context:,}-token window.",
          f"- the first turn that did not fit whole was turn {first_drop}; by turn {n_turns} the prompt holds turns "
          f"{records[-1]['turns_held'][0]}-{n_turns} ({checks['turns_dropped']} dropped, oldest first: "
          f"{'yes' if checks['oldest_first'] else 'NO'})." if first_drop else
          f"- the conversation never outgrew the window in {n_turns} turns.",
          f"- the system prompt is in {'every' if checks['system_always_kept'] else 'NOT every'} prompt.", ""]
    headline = {"context window": context, "reserved for the answer": max_new, "turns": n_turns,
                "first turn with a drop": first_drop, "turns dropped by the end": checks["turns_dropped"],
                "largest prompt + reserved": checks["max_total_tokens"]}
    return Report(NAME, CLAIM, headline, "\n".join(md), {"context.png": plot(records, context, budget)}, checks)


def plot(records: list[dict], context: int, budget: int) -> bytes:
    import numpy as np
    from matplotlib.colors import ListedColormap

    fig = new_figure(9, 7)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.2])
    turns = [r["turn"] for r in records]
    top.plot(turns, [r["prompt_tokens"] for r in records], marker="o", label="prompt tokens")
    top.axhline(context, color="black", label=f"context window ({context:,})")
    top.axhline(budget, color="grey", linestyle="--", label=f"prompt limit (window - reserved answer, {budget:,})")
    drops = [r for r in records if r["dropped_now"]]
    top.scatter([r["turn"] for r in drops], [r["prompt_tokens"] for r in drops], color="red", zorder=3,
                label="oldest turns dropped here")
    top.set_ylabel("tokens")
    top.set_ylim(0, context * 1.1)
    top.legend(fontsize=8, loc="lower right")
    top.set_title("A conversation outgrowing the context window")
    held = np.zeros((len(records), len(records)))  # (earlier turn, turn sent)
    for r in records:
        for t in r["turns_held"]:
            held[t - 1, r["turn"] - 1] = 1
        for t in range(1, r["turns_held"][0]):
            held[t - 1, r["turn"] - 1] = -1
    colours = ListedColormap(["#e06666", "white", "#6fa8dc"])  # dropped, not yet sent, in the prompt
    bottom.imshow(held, cmap=colours, vmin=-1, vmax=1, origin="lower", aspect="auto",
                  extent=(0.5, len(records) + 0.5, 0.5, len(records) + 0.5))
    bottom.set_xlabel("turn sent")
    bottom.set_ylabel("earlier turn (blue: in the prompt, red: dropped)")
    return png(fig)
