"""The official OpenAI Python SDK's Responses API against the proxy on TokenHub models.

Run by tests/it/tokenhub_clients.rs; by hand:
python3 tests/clients/tokenhub_responses.py http://127.0.0.1:4000
Prints `ok` when the SDK got what a user expects; exits non-zero with the reason otherwise.
"""

import sys

import openai

from tokenhub_png import png_base64

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-any", max_retries=0)

# hy4 sees the image itself.
seen = client.responses.create(model="hy4", input=[{"role": "user", "content": [
    {"type": "input_text", "text": "What does this show?"},
    {"type": "input_image", "image_url": "data:image/png;base64," + png_base64()},
]}])
assert seen.output_text.startswith("Description of image "), seen.output_text
assert "inline image/png picture" in seen.output_text, seen.output_text

# A DeepSeek tool loop with reasoning on, as Codex runs it (streamed, stateless).
tools = [{
    "type": "function",
    "name": "exec_command",
    "description": "Run a command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                   "required": ["cmd"]},
}]
history = [
    {"role": "developer", "content": "You are a coding agent."},
    {"role": "user", "content": "Use exec_command with cmd=ls"},
]
with client.responses.stream(model="deepseek-v4-flash", input=history, tools=tools,
                             reasoning={"effort": "xhigh"}, store=False,
                             include=["reasoning.encrypted_content"]) as stream:
    first = stream.get_final_response()
calls = [o for o in first.output if o.type == "function_call"]
assert len(calls) == 1 and calls[0].name == "exec_command", first.output
assert calls[0].arguments == '{"cmd":"ls"}', calls[0].arguments
assert any(o.type == "reasoning" for o in first.output), first.output
history += [o.model_dump(exclude_none=True) for o in first.output]
history.append({"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "a.txt"})
answer = client.responses.create(model="deepseek-v4-flash", input=history, tools=tools,
                                 reasoning={"effort": "xhigh"}, store=False)
assert answer.output_text == "Echo: a.txt", answer.output_text

# The same turn without the reasoning item: the proxy replays it from memory.
history = [h for h in history if h.get("type") != "reasoning"]
answer = client.responses.create(model="deepseek-v4-flash", input=history, tools=tools,
                                 store=False)
assert answer.output_text == "Echo: a.txt", answer.output_text

print("ok")
