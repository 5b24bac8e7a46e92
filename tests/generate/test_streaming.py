"""Streaming text that is not English on the real SmolLM2: byte-level tokens end inside Chinese characters
and emoji, and the streamed pieces are still whole characters that join to the decoded completion."""

import pytest

from llmlab.generate import GenerationConfig, stream


def whole_characters(data: bytes) -> str:
    """The text of the longest beginning of ``data`` that is valid UTF-8 (an unfinished character at the
    end, at most 3 bytes of a 4-byte sequence, is left out)."""
    for cut in range(4):
        try:
            return data[:len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"not UTF-8 even without its last bytes: {data!r}")


# max_new_tokens is where each greedy continuation is between two characters (the next token would
# start a character its following token finishes), so the whole completion is valid UTF-8
@pytest.mark.parametrize("prompt, max_new_tokens", [
    ("我喜欢自然语言处理，因为它可以", 15),
    ("I love pizza 🍕 and tacos 🌮, my favourite emojis are", 12),
], ids=["chinese", "emoji"])
def test_streamed_pieces_are_whole_characters(smollm2_model, prompt, max_new_tokens):
    tok = smollm2_model.tokenizer
    s = stream(smollm2_model.model, tok, prompt, GenerationConfig(max_new_tokens=max_new_tokens))
    pieces = list(s)
    ids = s.completion.ids
    assert len(ids) == max_new_tokens
    # the stream really cut characters: some new token is part of a character (alone it is not UTF-8)
    split = [i for i in ids if "\ufffd" in tok.decode([i])]
    assert split, [tok.decode([i]) for i in ids]
    text = tok.decode(ids)
    assert "\ufffd" not in text and any(ord(ch) > 0x7f for ch in text)
    assert "".join(pieces) == text == s.completion.text
    assert all(p and "\ufffd" not in p for p in pieces)
    # each token's piece is the text its bytes finish: what is whole after it, less what was whole before
    expected, before, data = [], "", b""
    for i in ids:
        data += tok.token_bytes(i)
        now = whole_characters(data)
        if now != before:
            expected.append(now[len(before):])
        before = now
    assert pieces == expected and len(pieces) < len(ids)
