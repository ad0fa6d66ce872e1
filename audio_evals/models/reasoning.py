"""Separating a reasoning model's thinking from its answer.

Scoring must see only the answer, but the thinking is kept in the results. Chat templates differ:
some put the opening tag in the prompt (the reply starts inside the thinking and only the
closing tag appears), and a reply cut off by ``max_tokens`` may never close the thinking.

Tags ``("", "</think>")`` (no opening tag) say the prompt opened the thinking, as Step-Audio-R1.1's
``<think>\\n`` prefill does; the answer is then what the reference tool scores for that model (its
``step_audio_r1.py`` ``_extract_response``): the text after the last closing tag, stripped, or the
whole reply when there is none. The reference strips no other model's thinking, so both tags give
this project's own rule for the others.
"""

from __future__ import annotations

import re

DEFAULT_TAGS: tuple[str, str] = ("<think>", "</think>")


def _after_last_close(text: str, close_tag: str) -> tuple[str, str | None]:
    head, closed, answer = text.rpartition(close_tag)
    return (answer.strip(), head.strip()) if closed else (text.strip(), None)


def split_reasoning(text: str, tags: tuple[str, str] = DEFAULT_TAGS) -> tuple[str, str | None]:
    """``(answer, reasoning)``: the text outside the tags and the text inside them.

    ``reasoning`` is None when the reply has no tags at all. With an opening tag, a closing tag
    met outside a block ends thinking that started earlier (in the prompt, or after a previous
    block), and an opening tag never closed makes the rest thinking. Without one, see the module.
    """
    open_tag, close_tag = tags
    if not open_tag:
        return _after_last_close(text, close_tag)
    parts = re.split(f"({re.escape(open_tag)}|{re.escape(close_tag)})", text)
    if len(parts) == 1:
        return text.strip(), None
    answer: list[str] = []
    thinking: list[str] = []
    for i in range(0, len(parts), 2):  # texts at even positions, each between two tags (or an end)
        after_open = i > 0 and parts[i - 1] == open_tag
        before_close = i + 1 < len(parts) and parts[i + 1] == close_tag
        (thinking if after_open or before_close else answer).append(parts[i])
    return (" ".join(a.strip() for a in answer if a.strip()),
            "\n\n".join(t.strip() for t in thinking if t.strip()))
