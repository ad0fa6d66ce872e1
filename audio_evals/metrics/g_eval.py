"""g-eval: an LLM judge rates each open answer 1-10; the mean is reported x10 (0-100).

The judge prompt is fixed and versioned (the version is recorded in ``params``) because a change
of wording changes the scores. The default, ``ultraeval-chatbot``, is the reference tool's
speech-AlpacaEval protocol: MT-Bench's single-answer prompt *without* a reference answer (its
``chatbot-eval`` template, a YAML-folded single line), the question from the dataset's
instruction, the first integer ``[[n]]`` of the reply, temperature 0, at most 2048 tokens.
``g-eval-v1`` is this project's alternative, which also shows the judge the reference answer.
The judge runs through the shared OpenAI-compatible client (bounded concurrency, retries on rate
limits). A reply without a rating is asked again up to ``parse_retries`` times (the reference
drops such a sample with an error); still none, it is recorded unparsed with the raw reply, left
out of the mean and counted as ``unparsed``. ``request_params`` are extra request-body fields
(e.g. vLLM's ``structured_outputs``) sent with every judge request and recorded in ``params``.
"""

from __future__ import annotations

import re
from typing import Any

from audio_evals.metrics.base import Metric, SampleScore, ScoreItem
from audio_evals.models.http_client import ApiError, OpenAIClient, Secret, resolve_base_url

#: The name this metric reports in summaries, rows and reports.
NAME = "g-eval"

JUDGE_PROMPT_V1 = (
    "[Instruction]\n"
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI "
    "assistant to the user question displayed below. Your evaluation should consider correctness and "
    "helpfulness. You will be given a reference answer and the assistant's answer. Begin your "
    "evaluation by comparing the assistant's answer with the reference answer. Identify and correct "
    "any mistakes. Be as objective as possible. After providing your explanation, you must rate the "
    "response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: "
    "\"Rating: [[5]]\".\n\n"
    "[Question]\n{question}\n\n"
    "[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n"
    "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)
#: The reference's ``chatbot-eval`` prompt as its YAML loads it: one line, no reference answer.
REFERENCE_CHATBOT_PROMPT = (
    "[Instruction] Please act as an impartial judge and evaluate the quality of the response provided by an "
    "AI assistant to the user question displayed below. Your evaluation should consider factors such as the "
    "helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your "
    "evaluation by providing a short explanation. Be as objective as possible. After providing your "
    "explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "
    "\"[[rating]]\", for example: \"Rating: [[5]]\". [Question] {question} [The Start of Assistant\u2019s "
    "Answer] {answer} [The End of Assistant\u2019s Answer]"
)
PROMPTS = {"ultraeval-chatbot": REFERENCE_CHATBOT_PROMPT, "g-eval-v1": JUDGE_PROMPT_V1}
#: How each prompt version's rating is read: the reference takes the first integer ``[[n]]``.
_RATINGS = {"ultraeval-chatbot": re.compile(r"\[\[(\d+)\]\]"),
            "g-eval-v1": re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")}
MAX_TOKENS = {"ultraeval-chatbot": 2048, "g-eval-v1": None}


def parse_rating(reply: str, prompt_version: str = "ultraeval-chatbot") -> float | None:
    """The first ``[[n]]`` of the reply under that version's rule, else None.

    ``ultraeval-chatbot`` takes any integer, as the reference does; ``g-eval-v1`` requires 1-10.
    """
    match = _RATINGS[prompt_version].search(reply)
    if not match:
        return None
    score = float(match.group(1))
    return score if prompt_version == "ultraeval-chatbot" or 1.0 <= score <= 10.0 else None


class GEval(Metric):
    name = NAME
    higher_is_better = True
    description = "LLM-judge rating 1-10, mean x10 (0-100, higher is better)"

    def __init__(self, base_url: str, model: str, api_key: Secret | None, prompt_version: str,
                 max_concurrency: int, timeout_s: float, max_retries: int, parse_retries: int,
                 request_params: dict[str, Any] | None = None):
        if prompt_version not in PROMPTS:
            raise ValueError(f"g-eval: unknown prompt_version {prompt_version!r} (known: {', '.join(PROMPTS)})")
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.prompt_version = prompt_version
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.parse_retries = parse_retries
        fixed = sorted({"model", "messages", "temperature"} & set(request_params or {}))
        if fixed:
            raise ValueError(f"g-eval: request_params cannot set {', '.join(fixed)} (the judge protocol fixes them)")
        self.request_params = dict(request_params or {})
        with_reference = prompt_version == "g-eval-v1"
        self.normalization = ("None: the judge reads the raw answer, the question"
                              + (" and the reference answer." if with_reference else " (no reference answer)."))
        self.protocol = (f"reference protocol: UltraEval-Audio chatbot_eval (MT-Bench single answer, judge {model}, "
                         "temperature 0)" if not with_reference else
                         f"audio-evals alternative: judge {model} with the reference answer, temperature 0")

    def params(self) -> dict[str, Any]:
        return {"judge_model": self.model, "base_url": self.base_url, "prompt_version": self.prompt_version,
                "temperature": 0.0, "max_tokens": MAX_TOKENS[self.prompt_version], "parse_retries": self.parse_retries,
                **({"request_params": self.request_params} if self.request_params else {})}

    def _prompt(self, item: ScoreItem) -> str:
        question = item.fields.get("question") or item.fields.get("instruction") or "(not available)"
        reference = item.reference if isinstance(item.reference, str) else "\n".join(item.reference or [])
        # One pass of substitution, so braces inside an answer are never read as placeholders.
        values = {"question": str(question), "reference": reference, "answer": item.hypothesis}
        return re.sub(r"\{(question|reference|answer)\}", lambda m: values[m.group(1)], PROMPTS[self.prompt_version])

    def _judge(self, client: OpenAIClient, item: ScoreItem) -> SampleScore:
        messages = [{"role": "user", "content": self._prompt(item)}]
        reply = ""
        extra = {"max_tokens": MAX_TOKENS[self.prompt_version]} if MAX_TOKENS[self.prompt_version] else {}
        extra.update(self.request_params)
        asked = 0
        try:
            for asked in range(1, self.parse_retries + 2):
                reply = client.chat(messages, self.model, temperature=0.0, **extra)
                score = parse_rating(reply, self.prompt_version)
                if score is not None:
                    return SampleScore(item.sample_id, self.name, score * 10, {"score": score, "asked": asked},
                                       explanation=reply)
        except ApiError as e:
            reply = f"judge request refused: {e}"
        return SampleScore(item.sample_id, self.name, None, {"asked": asked}, parsed=False, explanation=reply)

    def score(self, items: list[ScoreItem]) -> list[SampleScore]:
        if not items:
            return []
        with OpenAIClient(self.base_url, self.api_key, timeout_s=self.timeout_s, max_retries=self.max_retries,
                          max_concurrency=self.max_concurrency) as client:
            return client.map(lambda item: self._judge(client, item), items)

    def aggregate(self, scores: list[SampleScore]) -> float:
        rated = [s.stats["score"] for s in scores if "score" in s.stats]
        return 10.0 * sum(rated) / len(rated) if rated else float("nan")


def build(
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    base_url_env: str | None = "OPENAI_BASE_URL",
    api_key_env: str | None = "OPENAI_API_KEY",
    prompt_version: str = "ultraeval-chatbot",
    max_concurrency: int = 8,
    timeout_s: float = 120.0,
    max_retries: int = 4,
    parse_retries: int = 2,
    request_params: dict[str, Any] | None = None,
) -> GEval:
    """The judge named by the task's ``metric_params``; endpoint and key come from the environment."""
    return GEval(resolve_base_url(base_url, base_url_env, "g-eval judge"), model, Secret.from_env(api_key_env),
                 prompt_version, max_concurrency, timeout_s, max_retries, parse_retries, request_params)
