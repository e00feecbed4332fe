"""The official OpenAI Python SDK (chat completions) against the proxy on TokenHub models.

Run by tests/it/tokenhub_clients.rs with the proxy's base URL and a scenario name; by hand:
python3 tests/clients/tokenhub_openai.py http://127.0.0.1:4000 images
Prints `ok` when the SDK got what a user expects; exits non-zero with the reason otherwise.
"""

import sys

import openai

from tokenhub_png import png_base64

base_url, scenario = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-any", max_retries=0)
SAW_NO_IMAGE = "(I saw no image.)"
BASH = [{
    "type": "function",
    "function": {
        "name": "Bash",
        "description": "Run a command",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}]


def image_question(model):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What does this show?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png_base64()}},
    ]}])


def dropped(raw):
    return raw.headers.get("x-hunyuan-proxy-dropped", "")


if scenario == "images":
    # hy4 sees the picture itself: its answer is its own description of it.
    seen = image_question("hy4")
    assert seen.model == "hy4", seen.model
    text = seen.choices[0].message.content
    assert text.startswith("Description of image "), text
    assert "inline image/png picture" in text, text
    # hy4-flash sees it too.
    flash = image_question("hy4-flash")
    assert flash.model == "hy4-flash", flash.model
    text = flash.choices[0].message.content
    assert "inline image/png picture" in text, text
    # hy3 cannot see: the proxy had it described, hy3 got the words, not the image.
    told = image_question("hy3")
    assert told.model == "hy3", told.model
    text = told.choices[0].message.content
    assert "Description of image " in text, text
    assert SAW_NO_IMAGE not in text, text

elif scenario == "deepseek":
    model = "deepseek-v4-flash"
    history = [
        {"role": "developer", "content": "Answer with tools."},
        {"role": "user", "content": "Use Bash with command=ls -la"},
    ]
    first = client.chat.completions.create(model=model, messages=history, tools=BASH)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls", first
    assert message.tool_calls[0].function.name == "Bash", message
    assert message.tool_calls[0].function.arguments == '{"command":"ls -la"}', message
    # The proxy passes DeepSeek's reasoning on to the client.
    assert (message.model_extra or {}).get("reasoning_content"), message
    # The SDK user rebuilds the assistant turn from the typed fields: no reasoning_content.
    history.append({
        "role": "assistant",
        "content": message.content,
        "tool_calls": [call.model_dump(exclude_none=True) for call in message.tool_calls],
    })
    history.append({"role": "tool", "tool_call_id": message.tool_calls[0].id,
                    "content": "total 0\ndrwx a.txt"})
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=history, tools=BASH, tool_choice="required")
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("Echo: total 0"), answer
    assert "tool_choice" in dropped(raw), dropped(raw)
    # A named forced tool on a first turn: downgraded and reported the same way.
    raw = client.chat.completions.with_raw_response.create(
        model=model, tools=BASH, tool_choice={"type": "function", "function": {"name": "Bash"}},
        messages=[{"role": "developer", "content": "Be brief."},
                  {"role": "user", "content": "Use Bash with command=pwd"}])
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "Bash"
    assert "tool_choice" in dropped(raw), dropped(raw)

elif scenario == "kimi-minimax":
    raw = client.chat.completions.with_raw_response.create(
        model="kimi-k3", temperature=0.3, reasoning_effort="low",
        messages=[{"role": "user", "content": "say hi"}])
    answer = raw.parse()
    assert answer.choices[0].message.content == "Echo: say hi", answer
    assert "temperature" in dropped(raw), dropped(raw)
    answer = client.chat.completions.create(
        model="minimax-m3", extra_body={"thinking": {"type": "enabled"}},
        messages=[{"role": "user", "content": "think about it"}])
    message = answer.choices[0].message
    assert message.content == "Echo: think about it", answer
    assert (message.model_extra or {}).get("reasoning_content"), message

elif scenario == "not-enabled":
    try:
        client.chat.completions.create(
            model="deepseek-v4-pro", messages=[{"role": "user", "content": "hi"}])
        raise SystemExit("a model that is not enabled answered")
    except openai.APIStatusError as e:
        assert e.status_code == 402, e
        assert "deepseek-v4-pro" in e.message, e.message
    for model in ["hy4", "deepseek-v4-flash"]:
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "still there?"}])
        assert answer.choices[0].message.content == "Echo: still there?", answer

else:
    raise SystemExit(f"unknown scenario {scenario}")

print("ok")
