"""Client-side helpers: core-library prompts as protobuf messages."""

from __future__ import annotations

from azr.prompts import Prompt
from azr_contracts.v1 import generator_pb2


def prompt_to_proto(prompt: Prompt) -> generator_pb2.Prompt:
    return generator_pb2.Prompt(messages=[generator_pb2.ChatMessage(role=m.role, content=m.content) for m in prompt.messages],
                                assistant_prefix=prompt.assistant_prefix)
