"""The official Anthropic Python SDK against the proxy's Messages routes.

Run by tests/anthropic.rs (`python_sdk_speaks_to_the_proxy`) when `python3` can import
`anthropic`; by hand: python3 tests/clients/anthropic_sdk.py http://127.0.0.1:4000
Exits non-zero, with the reason, when the SDK cannot use an answer.
"""

import sys

import anthropic

base_url = sys.argv[1]
client = anthropic.Anthropic(base_url=base_url, api_key="sk-any", max_retries=0)

# A plain answer, parsed into the SDK's types.
message = client.messages.create(
    model="claude-sonnet-4-5",
    max_tokens=100,
    system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    messages=[{"role": "user", "content": "say hi"}],
)
assert message.type == "message", message
assert message.model == "claude-sonnet-4-5", message.model
assert message.content[0].type == "text" and message.content[0].text == "Echo: say hi", message
assert message.stop_reason == "end_turn", message.stop_reason
assert message.usage.input_tokens > 0, message.usage

# A streamed tool call, assembled by the SDK's own stream accumulator.
tools = [{
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}]
with client.messages.stream(
    model="claude-opus-4-1",
    max_tokens=1000,
    tools=tools,
    thinking={"type": "enabled", "budget_tokens": 1024},
    messages=[{"role": "user", "content": "list files"}],
) as stream:
    final = stream.get_final_message()
uses = [b for b in final.content if b.type == "tool_use"]
assert len(uses) == 1, final.content
assert uses[0].name == "Bash" and uses[0].input == {"command": "list files"}, uses[0]
assert final.stop_reason == "tool_use", final.stop_reason

# The tool result goes back; the conversation goes on.
reply = client.messages.create(
    model="claude-opus-4-1",
    max_tokens=1000,
    tools=tools,
    messages=[
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": uses[0].id, "content": "a.txt b.txt"}]},
    ],
)
assert "a.txt b.txt" in reply.content[0].text, reply

# count_tokens.
count = client.messages.count_tokens(
    model="claude-sonnet-4-5", messages=[{"role": "user", "content": "how many?"}]
)
assert count.input_tokens > 0, count

# A bad request is the SDK's BadRequestError, with Anthropic's error body.
try:
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=10,
        messages=[{"role": "robot", "content": "hi"}],
    )
except anthropic.BadRequestError as err:
    assert err.body["error"]["type"] == "invalid_request_error", err.body
else:
    raise AssertionError("a bad role was accepted")

print("ok")
