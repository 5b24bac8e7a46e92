"""Chat presets: named system prompts for common uses (creative suggestions, summaries...).

They are plain text, kept in one file (presets.json beside this module), so adding one is
adding a line. `llmlab chat --preset chef` starts a chat with that system prompt.
"""

import json
from functools import cache
from pathlib import Path

from llmlab.errors import LlmlabError

PRESETS_FILE = Path(__file__).with_name("presets.json")


@cache
def presets() -> dict[str, str]:
    return json.loads(PRESETS_FILE.read_text(encoding="utf-8"))


def preset(name: str) -> str:
    """The system prompt of a preset, or a one-line error naming the known presets."""
    try:
        return presets()[name]
    except KeyError:
        raise LlmlabError(f"unknown preset {name!r} (known: {', '.join(presets())})") from None
