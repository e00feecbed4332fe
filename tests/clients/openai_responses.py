"""The official OpenAI Python SDK's Responses API against the proxy.

Run by tests/it/responses_http.rs (`the_openai_python_sdk_speaks_to_the_proxy`) when `python3`
can import `openai`; by hand: python3 tests/clients/openai_responses.py http://127.0.0.1:4000/v1
Exits non-zero, with the reason, when the SDK cannot use an answer.
"""

import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="sk-any", max_retries=0)
MODEL = "hunyuan-turbos-latest"

# A plain answer, parsed into the SDK's types.
response = client.responses.create(model=MODEL, instructions="Be brief.", input="say hi")
assert response.object == "response", response
assert response.status == "completed", response.status
assert response.output_text == "Echo: say hi", response.output_text
assert response.usage.input_tokens > 0, response.usage

# Continued with previous_response_id, then read back and deleted.
follow = client.responses.create(model=MODEL, previous_response_id=response.id, input="again")
assert follow.output_text == "Echo: again", follow.output_text
got = client.responses.retrieve(follow.id)
assert got.id == follow.id and got.output_text == "Echo: again", got
client.responses.delete(follow.id)
try:
    client.responses.retrieve(follow.id)
    raise SystemExit("a deleted response was still there")
except openai.NotFoundError:
    pass

# A streamed function call, through the SDK's own event parser.
tools = [{
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}]
arguments = ""
final = None
with client.responses.stream(model=MODEL, input="list files", tools=tools) as stream:
    for event in stream:
        if event.type == "response.function_call_arguments.delta":
            arguments += event.delta
    final = stream.get_final_response()
calls = [item for item in final.output if item.type == "function_call"]
assert len(calls) == 1, final.output
assert calls[0].name == "exec_command", calls[0]
assert calls[0].arguments == arguments and "cmd" in json.loads(arguments), calls[0]

# The tool's output back, a final answer.
answer = client.responses.create(
    model=MODEL,
    tools=tools,
    input=[
        {"role": "user", "content": "list files"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "exec_command",
         "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "a.txt"},
    ],
)
assert answer.output_text == "Echo: a.txt", answer.output_text

# Bad input is the SDK's BadRequestError.
try:
    client.responses.create(model=MODEL, input=[{"role": "user", "content": [
        {"type": "input_file", "file_id": "file_1"}]}])
    raise SystemExit("an input_file was accepted")
except openai.BadRequestError:
    pass

print("ok")
