"""The chat template: how a conversation becomes the one text a GPT reads.

A model tuned on requests and answers learns them in one layout, and must be prompted in the
same layout afterwards. tinyllm's layout puts each message after its role on a line of its own,
and ends each answer with the end-of-text token, so that generation stops there::

    <|system|>
    You tell short stories.
    <|user|>
    Tell a story about a cat called Tom.
    <|assistant|>
    Once upon a time, there was a cat called Tom ...<|endoftext|>

A ``prompt`` / ``completion`` record is the conversation [user: prompt, assistant: completion].
To ask the tuned model, the prompt ends with the generation prompt ``<|assistant|>\\n`` and
the model writes the answer.

The template is a Jinja template, as Hugging Face's ``chat_template`` is, saved beside the
model as ``chat_template.jinja``: ``tokenizer.apply_chat_template`` of ``transformers`` renders
it the same way, and a model directory may bring its own. ``segments`` splits a rendered
conversation into the parts that are answers (the training targets) and the rest.
"""
from functools import lru_cache

from ..errors import TinyLLMError

CHAT_TEMPLATE_FILE = "chat_template.jinja"
ROLES = ("system", "user", "assistant")

DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@lru_cache(maxsize=8)
def _compiled(template: str):
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment    # a model's template is data
    try:
        return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) \
            .from_string(template)
    except TemplateError as e:
        raise TinyLLMError(f"the chat template is not a valid Jinja template ({e})") from None


def render(template: str, messages: list[dict], eos_token: str, *,
           add_generation_prompt: bool = False) -> str:
    """The text of ``messages`` in ``template``; ``add_generation_prompt`` ends it where the
    assistant's answer begins."""
    from jinja2 import TemplateError
    try:
        return _compiled(template).render(messages=messages, eos_token=eos_token,
                                          add_generation_prompt=add_generation_prompt)
    except TemplateError as e:
        raise TinyLLMError(f"the chat template failed on a conversation ({e})") from None


def segments(template: str, messages: list[dict], eos_token: str) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, is_answer) parts, in order: an assistant message's
    part is its text in the template (its content and the end of text after it), the rest is
    what leads up to it. Each part is found as the difference between the renderings of the
    conversation up to a message, which the template must extend one another."""
    parts, done = [], ""
    for i, message in enumerate(messages):
        answer = message["role"] == "assistant"
        upto = render(template, messages[:i], eos_token, add_generation_prompt=True) \
            if answer else None
        full = render(template, messages[:i + 1], eos_token)
        for text, is_answer in ((upto, False), (full, answer)):
            if text is None:
                continue
            if not text.startswith(done):
                raise TinyLLMError("the chat template renders a conversation differently from "
                                   "its beginning, so the answers cannot be told apart: use "
                                   "a template that only appends")
            if len(text) > len(done):
                parts.append((text[len(done):], is_answer))
            done = text
    return parts


def check_messages(messages, where: str) -> list[dict]:
    """``messages`` checked as a conversation: a non-empty list of {"role", "content"} objects
    whose roles are system, user or assistant, with at least one assistant message."""
    if not isinstance(messages, list) or not messages:
        raise TinyLLMError(f"{where}: 'messages' must be a non-empty list of "
                           "{\"role\": ..., \"content\": ...} objects")
    for n, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise TinyLLMError(f"{where}: message {n} is not an object with 'role' and "
                               "'content'")
        if m["role"] not in ROLES:
            raise TinyLLMError(f"{where}: message {n} has the role {m['role']!r}: use "
                               f"{', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise TinyLLMError(f"{where}: message {n}'s content is not text")
    if not any(m["role"] == "assistant" for m in messages):
        raise TinyLLMError(f"{where}: the conversation has no assistant message to learn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def request(prompt: str) -> list[dict]:
    """A one-message conversation: the user asks ``prompt``."""
    return [{"role": "user", "content": prompt}]


__all__ = ["CHAT_TEMPLATE_FILE", "DEFAULT_TEMPLATE", "ROLES", "render", "segments",
           "check_messages", "request"]
