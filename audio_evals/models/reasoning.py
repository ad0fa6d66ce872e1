"""Separating a reasoning model's thinking from its answer.

Scoring must see only the answer, but the thinking is kept in the results. Chat templates differ:
some put the opening tag in the prompt (the reply starts inside the thinking and only the
closing tag appears), and a reply cut off by ``max_tokens`` may never close the thinking.
"""

from __future__ import annotations

DEFAULT_TAGS: tuple[str, str] = ("<think>", "</think>")


def split_reasoning(text: str, tags: tuple[str, str] = DEFAULT_TAGS) -> tuple[str, str | None]:
    """``(answer, reasoning)``: the text outside the tags and the text inside them.

    ``reasoning`` is None when the reply has no tags at all. A closing tag before any opening one
    ends thinking that started in the prompt; an opening tag never closed makes the rest thinking.
    """
    open_tag, close_tag = tags
    answer: list[str] = []
    thinking: list[str] = []
    rest = text
    close_at, open_at = rest.find(close_tag), rest.find(open_tag)
    if close_at != -1 and (open_at == -1 or close_at < open_at):
        thinking.append(rest[:close_at])
        rest = rest[close_at + len(close_tag):]
    while (open_at := rest.find(open_tag)) != -1:
        answer.append(rest[:open_at])
        rest = rest[open_at + len(open_tag):]
        close_at = rest.find(close_tag)
        if close_at == -1:
            thinking.append(rest)
            rest = ""
            break
        thinking.append(rest[:close_at])
        rest = rest[close_at + len(close_tag):]
    answer.append(rest)
    if not thinking:
        return text.strip(), None
    return (" ".join(a.strip() for a in answer if a.strip()),
            "\n\n".join(t.strip() for t in thinking if t.strip()))
