"""The official OpenAI Python client against a proxy whose upstream cuts its stream short.

Run by tests/it/truncation.rs (`openai_client_raises_on_a_cut_stream`) when `python3` can
import `openai`; the proxy's upstream (the mock) is set to end its close-delimited stream after
two events, with no finish_reason and no [DONE]. Prints `ok` when the client raised, and exits
non-zero when it took the cut answer for a complete one.
"""

import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-any", max_retries=0)

text = []
try:
    stream = client.chat.completions.create(
        model="hunyuan-turbos-latest",
        messages=[{"role": "user", "content": "tell me a long story"}],
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
except openai.APIError as err:
    assert "ended before the answer was finished" in str(err), err
    print("ok")
    sys.exit(0)

print(f"the client took a cut answer for a whole one: {''.join(text)!r}")
sys.exit(1)
