"""Render a registry prompt for one sample.

Text parts are Jinja templates over the sample's fields (sandboxed: a template cannot reach
Python internals); audio parts become the path of the sample's prepared audio. The rendered text
is sent as it comes out of the template, never stripped or reformatted: the reference protocol's
prompts end in spaces and newlines the model sees, so they must reach it byte for byte (Jinja's
defaults, as the reference renders them: no trimming of blocks, a template's one final newline
dropped).
"""

from __future__ import annotations

from functools import lru_cache

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from audio_evals.models.base import Content, Message
from audio_evals.records import PreparedSample
from audio_evals.registry.entries import PromptEntry

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined)


class PromptError(ValueError):
    """A template that cannot be rendered for a sample (e.g. a field the sample lacks)."""


@lru_cache(maxsize=256)
def _template(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def render(prompt: PromptEntry, prepared: PreparedSample) -> tuple[Message, ...]:
    sample = prepared.sample
    context = {**sample.fields, "id": sample.id, "lang": sample.lang}
    messages = []
    for message in prompt.messages:
        contents = []
        for part in message.contents:
            if part.type == "audio":
                contents.append(Content("audio", prepared.prepared))
                continue
            try:
                contents.append(Content("text", _template(part.value).render(context)))
            except jinja2.TemplateError as e:
                raise PromptError(f"prompt {prompt.name!r} cannot be rendered: {e}") from None
        messages.append(Message(message.role, tuple(contents)))
    return tuple(messages)
