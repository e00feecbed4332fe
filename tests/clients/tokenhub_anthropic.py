"""The official Anthropic Python SDK (/v1/messages) against the proxy on TokenHub models.

Run by tests/it/tokenhub_clients.rs; by hand:
python3 tests/clients/tokenhub_anthropic.py http://127.0.0.1:4000
Prints `ok` when the SDK got what a user expects; exits non-zero with the reason otherwise.
"""

import sys

import anthropic

from tokenhub_png import png_base64

base_url = sys.argv[1]
client = anthropic.Anthropic(base_url=base_url, api_key="sk-any", max_retries=0)

# hy4 sees the image itself.
seen = client.messages.create(model="hy4", max_tokens=200, messages=[{"role": "user", "content": [
    {"type": "text", "text": "What does this show?"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_base64()}},
]}])
text = "".join(b.text for b in seen.content if b.type == "text")
assert text.startswith("Description of image "), seen
assert "inline image/png picture" in text, text

# A DeepSeek tool loop with thinking on, streamed, as Claude Code runs it.
tools = [{
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                     "required": ["command"]},
}]
history = [{"role": "user", "content": "Use Bash with command=ls"}]
with client.messages.stream(model="deepseek-v4-flash", max_tokens=2000, tools=tools,
                            thinking={"type": "enabled", "budget_tokens": 1024},
                            messages=history) as stream:
    first = stream.get_final_message()
kinds = [b.type for b in first.content]
assert "thinking" in kinds and "tool_use" in kinds, first.content
use = next(b for b in first.content if b.type == "tool_use")
assert use.name == "Bash" and use.input == {"command": "ls"}, use
assert first.stop_reason == "tool_use", first.stop_reason
history.append({"role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in first.content]})
history.append({"role": "user", "content": [
    {"type": "tool_result", "tool_use_id": use.id, "content": "a.txt b.txt"}]})
reply = client.messages.create(model="deepseek-v4-flash", max_tokens=2000, tools=tools,
                               thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=history)
text = "".join(b.text for b in reply.content if b.type == "text")
assert text == "Echo: a.txt b.txt", reply
assert reply.stop_reason == "end_turn", reply.stop_reason

# The same next turn without the thinking block (a client that drops it): replayed from memory.
history[1] = {"role": "assistant",
              "content": [b.model_dump(exclude_none=True) for b in first.content
                          if b.type != "thinking"]}
reply = client.messages.create(model="deepseek-v4-flash", max_tokens=2000, tools=tools,
                               messages=history)
text = "".join(b.text for b in reply.content if b.type == "text")
assert text == "Echo: a.txt b.txt", reply

print("ok")
