#!/usr/bin/env bash
# The shipped binary against nginx as a reverse proxy and against the upstream directly, in the
# same run (docs/performance.md, "The server as shipped against nginx").
#
#   scripts/bench-nginx.sh                 # 3 rounds of 5 s per figure, medians (~5 min)
#   scripts/bench-nginx.sh --quick         # 1 round of 1 s: checks that the bench works
#   scripts/bench-nginx.sh --rounds 5 --duration 10
#   scripts/bench-nginx.sh --no-build      # use target/release/hunyuan-proxy as it is
#   scripts/bench-nginx.sh --callgrind 2000  # instructions per request instead (valgrind)
#   CALLGRIND_KEEP=/tmp/cg scripts/bench-nginx.sh --callgrind  # and keep the dumps there
#   CALLGRIND_ONLY=plain,plain-traced scripts/bench-nginx.sh --callgrind  # only those requests
#   HUNYUAN_PROXY_BIN=/tmp/old scripts/bench-nginx.sh   # time another build of the binary
#   scripts/bench-nginx.sh --usage-only --callgrind 1000  # only the usage on/off line
#
# The upstream is nginx with a canned Hunyuan answer (`return 200 '<json>'` for non-stream, a
# static 20-event SSE file for stream). The hops measured in front of it: nothing (direct),
# nginx as a reverse proxy (keepalive upstream pool) and hunyuan-proxy (release build, default
# config plus `api_base` and `log_level = "warn"`; its default current-thread runtime on one CPU,
# and again with `--runtime multi-thread --worker-threads 1`). The hop under test runs on CPU 1, the
# upstream and wrk on CPU 0; wrk -t1, c=1 for latency (p50/p99), c=32 for throughput. CPU per
# request is the user + system time of the hop's process (/proc/<pid>/stat) over a c=32 run.
# PM QoS is held for the whole run (/dev/cpu_dma_latency, see the benchmarking notes), which
# needs root. Prints markdown tables with ratios to nginx, and the binary with OpenTelemetry
# traces on (every request sampled and exported) against off: req/s and CPU per request, or
# with --callgrind instructions per request, in the same run.
#
# Usage accounting's extras on and off (its own table and target line, both modes): the same
# binary once with a named client key that has a budget and the request log on (1,000 entries),
# once with the same key in the plain `client_api_keys` list and the log off; the ~1 KB chat
# request on both. The accounting itself has no switch: both configs count tokens and cost. To
# time the binary without it, build one with the usage layer left out and pass it as
# HUNYUAN_PROXY_BIN in a run of its own (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=1
ARGS=()
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        *) ARGS+=("$arg") ;;
    esac
done
# HUNYUAN_PROXY_BIN=path: time another build of the binary (implies --no-build).
if [ -n "${HUNYUAN_PROXY_BIN:-}" ]; then BUILD=0; fi

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} with apt-get" >&2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: ${need[*]} missing and there is no apt-get: install nginx and wrk yourself" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! { $SUDO apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
        { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y "${need[@]}" >/dev/null 2>&1; }; }; then
        echo "error: could not install ${need[*]} with apt-get: install nginx and wrk yourself" >&2
        exit 1
    fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v taskset >/dev/null 2>&1 || { echo "error: taskset (util-linux) is missing" >&2; exit 1; }

if [ "$BUILD" -eq 1 ]; then
    cargo build --release --bin hunyuan-proxy >&2
fi
PROXY_BIN=${HUNYUAN_PROXY_BIN:-${CARGO_TARGET_DIR:-target}/release/hunyuan-proxy}
[ -x "$PROXY_BIN" ] || { echo "error: $PROXY_BIN not built" >&2; exit 1; }

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT+dirty"; fi

exec python3 - "$NGINX" "$PROXY_BIN" "$COMMIT" "$PWD" "${ARGS[@]+"${ARGS[@]}"}" <<'PYTHON'
import json, os, re, shutil, signal, statistics, struct, subprocess, sys, tempfile, time

nginx, proxy_bin, commit, root = sys.argv[1:5]
args = sys.argv[5:]
rounds, duration = 3, 5
quick = "--quick" in args
if quick:
    rounds, duration = 1, 1
for i, a in enumerate(args):
    if a == "--rounds":
        rounds = int(args[i + 1])
    if a == "--duration":
        duration = int(args[i + 1])
callgrind = None
usage_only = "--usage-only" in args
for i, a in enumerate(args):
    if a == "--callgrind":
        callgrind = int(args[i + 1]) if i + 1 < len(args) and args[i + 1].isdigit() else 2000

CLK_TCK = os.sysconf("SC_CLK_TCK")
EVENTS = 20
work = tempfile.mkdtemp(prefix="bench-nginx-")
os.chmod(work, 0o755)  # nginx workers run unprivileged and read the SSE file
procs = []

def cleanup(*_):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)

signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))

# PM QoS: idle vCPUs poll instead of halting while this file stays open.
qos = None
try:
    qos = open("/dev/cpu_dma_latency", "wb", buffering=0)
    qos.write(struct.pack("i", 0))
    qos_note = "PM QoS held (cpu_dma_latency 0)"
except OSError as err:
    qos_note = f"PM QoS NOT held ({err}): c=1 latency includes vCPU wake-ups"
    print(f"warning: {qos_note}", file=sys.stderr)

# --- bodies --------------------------------------------------------------------------------
NOTE = "以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"
CHAT_JSON = json.dumps({
    "id": "3a3f0c1e0f8b4d6f9a2b7c5d1e4f6a8b", "object": "chat.completion", "created": 1764200000,
    "model": "hunyuan-turbos-latest",
    "choices": [{"index": 0, "message": {"role": "assistant",
                 "content": "Hello! I am Hunyuan. How can I help you today?"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 13, "total_tokens": 55}, "note": NOTE,
}, ensure_ascii=False, separators=(",", ":"))
words = ("Hello! I am Hunyuan, the model behind this canned answer, and I answer in small "
         "pieces like a real stream.").split(" ")
words = [w if i == 0 else " " + w for i, w in enumerate(words)][: EVENTS - 1]
assert len(words) == EVENTS - 1
sse = ""
for i, w in enumerate(words):
    chunk = {"id": "3a3f0c1e", "object": "chat.completion.chunk", "created": 1764200000,
             "model": "hunyuan-turbos-latest",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": w, "reasoning_content": ""},
                          "finish_reason": "stop" if i == EVENTS - 2 else None}], "note": NOTE}
    sse += "data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) + "\n\n"
sse += "data: [DONE]\n\n"
with open(f"{work}/events.sse", "w") as f:
    f.write(sse)
MODELS = json.dumps({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tencent"}
                     for m in ["hunyuan-turbos-latest", "hunyuan-t1-vision-20250916", "hunyuan-vision"]]})

def chat_request(stream):
    return json.dumps({"model": "hunyuan-turbos-latest", "messages": [
        {"role": "system", "content": "You are a helpful assistant. " * 12},
        {"role": "user", "content": "Summarise the attached meeting notes in three bullet points, please. " * 8}],
        "stream": stream, "temperature": 0.7})

def tool_conversation(dialect):
    # The 10-message conversation `benches/overhead.rs` and `examples/dialect_instructions.rs` send.
    with open(f"{root}/benches/data/tool-conversation-{dialect}.json") as f:
        return f.read()

def lua(name, body, extra=""):
    path = f"{work}/{name}.lua"
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Authorization"] = "Bearer bench"\n' + extra +
                f"wrk.body = [==[{body}]==]\n")
    return path

USAGE_KEY = "bench-client-key-0001"
LUA = {
    "plain": lua("plain", chat_request(False)),
    "stream": lua("stream", chat_request(True)),
    "chat": lua("chat", tool_conversation("chat")),
    "messages": lua("messages", tool_conversation("messages"), 'wrk.headers["anthropic-version"] = "2023-06-01"\n'),
    "responses": lua("responses", tool_conversation("responses")),
}
LUA["plain-keyed"] = lua("plain-keyed", chat_request(False), f'wrk.headers["Authorization"] = "Bearer {USAGE_KEY}"\n')

# --- servers -------------------------------------------------------------------------------
UP_PLAIN, UP_STREAM, NG_PLAIN, NG_STREAM, PX_PLAIN, PX_STREAM = 18101, 18102, 18111, 18112, 18121, 18122
# The same binary on tokio's multi-thread runtime with one worker (what `#[tokio::main]` gives
# on one CPU), against its default there (current-thread): the runtime flavour, measured.
MT_PLAIN, MT_STREAM = 18131, 18132
# The binary again with OpenTelemetry traces on and every request sampled, exporting to an
# OTLP sink (nginx answering 200 on the upstream's CPU): tracing's cost, in the same run. The
# span queue is large enough that no span is dropped at c=32 (the default 2,048 can fill, and a
# dropped span costs less than an exported one): every span is built, encoded and sent.
TR_PLAIN, TR_STREAM, UP_TRACES = 18161, 18162, 18104
TRACES_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{UP_TRACES}", "OTEL_TRACES_SAMPLER": "always_on",
              "OTEL_BSP_MAX_QUEUE_SIZE": "65536"}
# Usage accounting on and off (see the header): the config lines each adds to the common ones.
# Both price the canned answer's model, so the cost is counted in both.
US_ON, US_OFF = 18171, 18172
USAGE_PRICE = '\n[models."hunyuan-turbos-latest"]\nprice = { input = 0.8, output = 2.0, cached_input = 0.2 }\n'
USAGE_CONFIGS = {
    "on": ('request_log_size = 1000\n\n[client_keys.bench]\n'
           f'key = "{USAGE_KEY}"\nbudget = {{ tokens_per_day = 1000000000000, cost_per_month = 1000000.0 }}\n'
           + USAGE_PRICE),
    "off": f'request_log_size = 0\nclient_api_keys = ["{USAGE_KEY}"]\n' + USAGE_PRICE,
}
USAGE_LABELS = {"off": "plain `client_api_keys` key, request log off",
                "on": "named key with a budget, request log on (1,000)"}
# Start-up and memory: a proxy of its own in front of an upstream whose streams stay open.
UP_SLOW, PX_SLOW = 18103, 18151
OPEN_STREAMS = 1000
common = f"""pid {{dir}}/nginx.pid; error_log {{dir}}/error.log warn; worker_processes 1;
events {{ worker_connections 8192; }}
http {{ access_log off; client_body_temp_path {{dir}}/body; proxy_temp_path {{dir}}/proxy;
  fastcgi_temp_path {{dir}}/fcgi; uwsgi_temp_path {{dir}}/uwsgi; scgi_temp_path {{dir}}/scgi;
  keepalive_requests 1000000; tcp_nodelay on;
"""
def nginx_conf(name, servers):
    d = f"{work}/{name}"
    os.makedirs(d)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(common.replace("{dir}", d) + servers + "}\n")
    return d

models = f"location = /v1/models {{ default_type application/json; return 200 '{MODELS}'; }}"
up_dir = nginx_conf("upstream", f"""
  server {{ listen 127.0.0.1:{UP_PLAIN}; {models}
    location / {{ default_type application/json; return 200 '{CHAT_JSON}'; }} }}
  server {{ listen 127.0.0.1:{UP_STREAM}; root {work}; {models}
    # POST on a static file is a 405 in nginx; serve the SSE file as that error's 200 page.
    location / {{ error_page 405 =200 /events.sse; return 405; }}
    location = /events.sse {{ default_type text/event-stream; internal; }} }}
  server {{ listen 127.0.0.1:{UP_TRACES}; location / {{ return 200; }} }}
  # The same stream sent at 64 bytes/s after its first kilobyte: streams that stay open.
  server {{ listen 127.0.0.1:{UP_SLOW}; root {work}; {models}
    location / {{ error_page 405 =200 /events.sse; return 405; }}
    location = /events.sse {{ default_type text/event-stream; internal; limit_rate_after 1k; limit_rate 64; }} }}
""")
rp = "proxy_http_version 1.1; proxy_set_header Connection \"\";"
rp_dir = nginx_conf("reverse-proxy", f"""
  upstream plain {{ server 127.0.0.1:{UP_PLAIN}; keepalive 64; }}
  upstream stream {{ server 127.0.0.1:{UP_STREAM}; keepalive 64; }}
  server {{ listen 127.0.0.1:{NG_PLAIN}; location / {{ proxy_pass http://plain; {rp} }} }}
  server {{ listen 127.0.0.1:{NG_STREAM}; location / {{ proxy_pass http://stream; {rp} proxy_buffering off; }} }}
""")

def start(cmd, cpu, **kw):
    p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, **kw)
    procs.append(p)
    return p

def wait_port(port, path="/v1/models", timeout=10):
    import urllib.request
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"error: nothing answers on port {port}")

def worker_pid(master):
    for _ in range(100):
        out = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.05)
    raise SystemExit("error: no nginx worker")



def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024

def startup_and_memory():
    """Spawn to the first 200 on /health/ready, RSS idle, and RSS with OPEN_STREAMS streams open."""
    import socket, urllib.request
    cfg = f"{work}/proxy-slow.toml"
    with open(cfg, "w") as f:
        f.write(f'host = "127.0.0.1"\nport = {PX_SLOW}\napi_base = "http://127.0.0.1:{UP_SLOW}/v1"\n'
                f'log_level = "warn"\nupstream_concurrency = {OPEN_STREAMS + 100}\n')
    env = dict(os.environ, HUNYUAN_API_KEY="bench")
    env.pop("RUST_LOG", None)
    env.pop("HUNYUAN_API_BASE", None)
    started = time.monotonic()
    p = start([proxy_bin, "--config", cfg], 1, env=env, stderr=open(f"{work}/proxy-slow.log", "w"))
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{PX_SLOW}/health/ready", timeout=1).status == 200:
                break
        except Exception:
            pass
        if time.monotonic() - started > 10:
            raise SystemExit("error: the proxy was not ready within 10 s")
        time.sleep(0.001)
    ready_ms = (time.monotonic() - started) * 1e3
    time.sleep(0.5)
    idle = rss_mib(p.pid)
    body = open(LUA["stream"]).read().split("[==[", 1)[1].rsplit("]==]", 1)[0].encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer bench\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    socks = []
    for _ in range(OPEN_STREAMS):
        c = socket.create_connection(("127.0.0.1", PX_SLOW))
        c.sendall(head + body)
        socks.append(c)
    for c in socks:  # each stream has started: its head and first events arrived
        c.settimeout(30)
        if not c.recv(65536).startswith(b"HTTP/1.1 200"):
            raise SystemExit("error: a held stream did not start with 200")
    time.sleep(0.5)
    held = rss_mib(p.pid)
    for c in socks:
        c.close()
    return ready_ms, idle, held

def count_instructions(n):
    """User-space instructions per request of the shipped binary (callgrind), per request kind.

    The binary runs under valgrind with instrumentation off; after 200 warm-up requests it is
    switched on for `n` sequential keep-alive requests, then dumped. Start-up and warm-up are
    not counted, and the count does not depend on the machine's load."""
    import http.client
    if not shutil.which("valgrind"):
        raise SystemExit("error: valgrind is missing (apt-get install valgrind)")
    port = 18141
    def config(upstream):
        cfg = f"{work}/callgrind-{upstream}.toml"
        with open(cfg, "w") as f:
            f.write(f'host = "127.0.0.1"\nport = {port}\napi_base = "http://127.0.0.1:{upstream}/v1"\nlog_level = "warn"\n')
        return cfg
    env = dict(os.environ, HUNYUAN_API_KEY="bench")
    env.pop("RUST_LOG", None)
    env.pop("HUNYUAN_API_BASE", None)
    paths = {"plain": "/v1/chat/completions", "stream": "/v1/chat/completions", "chat": "/v1/chat/completions",
             "messages": "/v1/messages", "responses": "/v1/responses", "plain-traced": "/v1/chat/completions",
             "stream-traced": "/v1/chat/completions"}
    labels = {"plain": "~1 KB chat (system + user), `/v1/chat/completions`",
              "stream": "the same, streamed (20 events)",
              "chat": "10-message tool conversation, `/v1/chat/completions`",
              "messages": "the same conversation, `/v1/messages`",
              "responses": "the same conversation, `/v1/responses`",
              "plain-traced": "~1 KB chat, traces on (every request sampled, exported)",
              "stream-traced": "the same, streamed, traces on"}
    print(f"\n## Instructions per request, the shipped binary (commit {commit}; callgrind, {n} requests each, c=1)\n")
    print("| request | instructions / request |")
    print("|---|---|")
    totals = {}
    only = os.environ.get("CALLGRIND_ONLY")  # e.g. "plain,plain-traced": just those kinds
    if only:
        paths = {k: v for k, v in paths.items() if k in only.split(",")}
    for name, path in paths.items():
        out = f"{work}/callgrind.{name}"
        kind = name.removesuffix("-traced")
        run_env = dict(env, **TRACES_ENV) if name.endswith("-traced") else env
        vg = start(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                    proxy_bin, "--config", config(UP_STREAM if kind == "stream" else UP_PLAIN)], 1, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, "/health/live", timeout=60)
        body = open(LUA[kind]).read().split("[==[", 1)[1].rsplit("]==]", 1)[0]
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer bench",
                   "anthropic-version": "2023-06-01"}
        def send(k):
            for _ in range(k):
                conn.request("POST", path, body, headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    raise SystemExit(f"error: {path} answered {answer.status} under callgrind")
        # Traced: the spans go out in batches every 5 s (OTEL_BSP_SCHEDULE_DELAY's default), so
        # the warm-up's are sent before counting starts and the counted requests' before it
        # stops: the count is the n requests' spans, each built, encoded and sent once.
        flush = (lambda: time.sleep(5.5)) if name.endswith("-traced") else (lambda: None)
        send(200)
        flush()
        subprocess.run(["callgrind_control", "-i", "on", str(vg.pid)], check=True, capture_output=True)
        send(n)
        flush()
        subprocess.run(["callgrind_control", "-i", "off", str(vg.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(vg.pid)], check=True, capture_output=True)
        conn.close()
        vg.send_signal(signal.SIGTERM)
        vg.wait(timeout=60)
        dumps = sorted((f for f in os.listdir(work) if f.startswith(f"callgrind.{name}")),
                       key=lambda f: os.path.getsize(f"{work}/{f}"))
        total = 0
        with open(f"{work}/{dumps[-1]}") as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = max(total, int(line.split()[1]))
        if os.environ.get("CALLGRIND_KEEP"):  # a folder to keep the dumps in, for callgrind_annotate
            shutil.copy(f"{work}/{dumps[-1]}", os.path.join(os.environ["CALLGRIND_KEEP"], f"callgrind.{name}"))
        print(f"| {labels[name]} | {total // n:,} |")
        totals[name] = total / n
    traces_instructions(totals)

# --- traces on/off (issue 22): the same binary with OpenTelemetry off and on, in the same run ---
def traces_instructions(totals):
    """Callgrind: instructions per request with traces on against off."""
    print("\n## Traces on / off, instructions per request (callgrind, same run)\n")
    print("| request | traces off | traces on | on / off |")
    print("|---|---|---|---|")
    for kind, label in [("plain", "~1 KB chat"), ("stream", "the same, streamed (20 events)")]:
        off, on = totals.get(kind), totals.get(f"{kind}-traced")
        if off and on:
            print(f"| {label} | {off:,.0f} | {on:,.0f} | {on / off:.2f}× ({on - off:+,.0f}) |")

def traces_throughput(med):
    """Throughput and CPU per request at c=32 with traces on against off; the ≤ 10 % target."""
    print("\n## Traces on / off, throughput and CPU at c=32 (same run; sampling everything)\n")
    print("| scenario | req/s off | req/s on | on / off | CPU µs/req off | CPU µs/req on | on / off |")
    print("|---|---|---|---|---|---|---|")
    verdicts = []
    for scenario, label in [("plain", "non-stream"), ("stream", "stream")]:
        off = {f: med((scenario, "hunyuan-proxy"), f) for f in ["rps", "cpu"]}
        on = {f: med((scenario, "hunyuan-proxy, traces on (sample all)"), f) for f in ["rps", "cpu"]}
        cpu = "—" if not (off["cpu"] and on["cpu"]) else f"{on['cpu'] / off['cpu']:.2f}×"
        print(f"| {label} | {off['rps']:,.0f} | {on['rps']:,.0f} | {on['rps'] / off['rps']:.2f} | "
              f"{off['cpu'] or 0:.1f} | {on['cpu'] or 0:.1f} | {cpu} |")
        verdicts.append((f"{label}: req/s with traces on / off", f"{on['rps'] / off['rps']:.2f}",
                         "≥ 0.90", on["rps"] / off["rps"] >= 0.9))
    return verdicts

def usage_config(name, port):
    cfg = f"{work}/usage-{name}-{port}.toml"
    with open(cfg, "w") as f:
        f.write(f'host = "127.0.0.1"\nport = {port}\napi_base = "http://127.0.0.1:{UP_PLAIN}/v1"\n'
                f'log_level = "warn"\n' + USAGE_CONFIGS[name])
    return cfg

def usage_instructions(n):
    """Instructions per ~1 KB chat request with usage accounting on and off (callgrind, as
    `count_instructions` counts them: instrumentation on for `n` requests after 200)."""
    import http.client
    if not shutil.which("valgrind"):
        raise SystemExit("error: valgrind is missing (apt-get install valgrind)")
    port = 18142
    env = dict(os.environ, HUNYUAN_API_KEY="bench")
    env.pop("RUST_LOG", None)
    env.pop("HUNYUAN_API_BASE", None)
    body = open(LUA["plain-keyed"]).read().split("[==[", 1)[1].rsplit("]==]", 1)[0]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {USAGE_KEY}"}
    counts = {}
    for name in ["off", "on"]:
        out = f"{work}/callgrind-usage.{name}"
        vg = start(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                    proxy_bin, "--config", usage_config(name, port)], 1, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, "/health/live", timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        def send(k):
            for _ in range(k):
                conn.request("POST", "/v1/chat/completions", body, headers)
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    raise SystemExit(f"error: usage {name} answered {answer.status} under callgrind")
        send(200)
        for switch in (["-i", "on"], None, ["-i", "off"], ["-d"]):
            if switch is None:
                send(n)
            else:
                subprocess.run(["callgrind_control", *switch, str(vg.pid)], check=True, capture_output=True)
        conn.close()
        vg.send_signal(signal.SIGTERM)
        vg.wait(timeout=60)
        dumps = sorted((f for f in os.listdir(work) if f.startswith(f"callgrind-usage.{name}")),
                       key=lambda f: os.path.getsize(f"{work}/{f}"))
        total = 0
        with open(f"{work}/{dumps[-1]}") as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
        if os.environ.get("CALLGRIND_KEEP"):
            shutil.copy(f"{work}/{dumps[-1]}", os.path.join(os.environ["CALLGRIND_KEEP"], f"callgrind.usage-{name}"))
        counts[name] = total / n
    added = counts["on"] - counts["off"]
    print(f"\n## Usage accounting's budget, named key and log on and off (commit {commit}; callgrind, {n} requests each, c=1, ~1 KB chat)\n")
    print("| config | instructions / request |")
    print("|---|---|")
    for name in ["off", "on"]:
        print(f"| {USAGE_LABELS[name]} | {counts[name]:,.0f} |")
    ratio = added / counts["off"]
    print(f"| added by the named key, its budget and the log | {added:+,.0f} ({ratio:+.1%}) |")
    print(f"\n| figure | measured | target | |\n|---|---|---|---|")
    print(f"| usage on / off, instructions per chat request | {1 + ratio:.3f} | ≤ 1.03 | {'met' if ratio <= 0.03 else 'MISSED'} |")

try:
    up = start([nginx, "-p", up_dir, "-c", f"{up_dir}/nginx.conf", "-g", "daemon off;"], 0)
    ng = start([nginx, "-p", rp_dir, "-c", f"{rp_dir}/nginx.conf", "-g", "daemon off;"], 1)
    wait_port(UP_PLAIN); wait_port(UP_STREAM); wait_port(UP_SLOW); wait_port(NG_PLAIN); wait_port(NG_STREAM)
    wait_port(UP_TRACES, "/")
    if callgrind:
        if not usage_only:
            count_instructions(callgrind)
        usage_instructions(callgrind)
        raise SystemExit(0)
    ng_worker = worker_pid(ng)
    px = {}
    for port, upstream, extra in [(PX_PLAIN, UP_PLAIN, []), (PX_STREAM, UP_STREAM, []),
                                  (MT_PLAIN, UP_PLAIN, ["--runtime", "multi-thread", "--worker-threads", "1"]),
                                  (MT_STREAM, UP_STREAM, ["--runtime", "multi-thread", "--worker-threads", "1"]),
                                  (TR_PLAIN, UP_PLAIN, []), (TR_STREAM, UP_STREAM, [])]:
        cfg = f"{work}/proxy-{port}.toml"
        with open(cfg, "w") as f:
            f.write(f'host = "127.0.0.1"\nport = {port}\napi_base = "http://127.0.0.1:{upstream}/v1"\nlog_level = "warn"\n')
        env = dict(os.environ, HUNYUAN_API_KEY="bench")
        env.pop("RUST_LOG", None)
        env.pop("HUNYUAN_API_BASE", None)
        if port in (TR_PLAIN, TR_STREAM):
            env.update(TRACES_ENV)
        px[port] = start([proxy_bin, "--config", cfg, *extra], 1, env=env, stderr=open(f"{work}/proxy-{port}.log", "w"))
        wait_port(port, "/health/live")

    # Sanity: every hop answers the request it will be timed with.
    def curl(port, name):
        body = open(LUA[name]).read().split("[==[", 1)[1].rsplit("]==]", 1)[0]
        hdrs = ["-H", "Content-Type: application/json", "-H", "Authorization: Bearer bench",
                "-H", "anthropic-version: 2023-06-01"]
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *hdrs, "--data-binary", body,
                            f"http://127.0.0.1:{port}/v1/" + {"messages": "messages", "responses": "responses"}
                            .get(name, "chat/completions")], capture_output=True, text=True)
        if r.stdout != "200":
            raise SystemExit(f"error: port {port} answered {r.stdout} {r.stderr} for the {name} request")
    for port, name in [(UP_PLAIN, "plain"), (UP_STREAM, "stream"), (NG_PLAIN, "plain"), (NG_STREAM, "stream"),
                       (PX_PLAIN, "plain"), (PX_STREAM, "stream"), (MT_PLAIN, "plain"), (MT_STREAM, "stream"), (TR_PLAIN, "plain"), (TR_STREAM, "stream"),
                       (PX_PLAIN, "chat"), (PX_PLAIN, "messages"),
                       (PX_PLAIN, "responses")]:
        curl(port, name)

    def cpu_ticks(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}
    def wrk(port, path, name, conns, pid=None):
        before = cpu_ticks(pid) if pid else 0
        out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
                              "-s", LUA[name], f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, check=True).stdout
        after = cpu_ticks(pid) if pid else 0
        n = int(re.search(r"(\d+) requests in", out).group(1))
        if re.search(r"Non-2xx", out):
            raise SystemExit(f"error: non-2xx answers from port {port}:\n{out}")
        lat = {q: float(v) * UNITS[u] for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        cpu = (after - before) * 1e6 / CLK_TCK / n if pid else None
        return {"p50": lat.get("50"), "p99": lat.get("99"), "rps": rps, "cpu": cpu}

    CHAT = "/v1/chat/completions"

    def usage_on_off():
        """Throughput and CPU per request at c=32 with usage accounting on and off, in alternating
        rounds; returns the table's lines and the target's verdict."""
        procs_usage = {}
        for name, port in [("off", US_OFF), ("on", US_ON)]:
            env = dict(os.environ, HUNYUAN_API_KEY="bench")
            env.pop("RUST_LOG", None)
            env.pop("HUNYUAN_API_BASE", None)
            procs_usage[name] = start([proxy_bin, "--config", usage_config(name, port)], 1, env=env,
                                      stderr=open(f"{work}/usage-{name}.log", "w"))
            wait_port(port, "/health/live")
        runs = {"off": [], "on": []}
        for r in range(rounds):
            print(f"usage on/off, round {r + 1}/{rounds}", file=sys.stderr)
            for name in (["off", "on"] if r % 2 == 0 else ["on", "off"]):
                port = US_ON if name == "on" else US_OFF
                runs[name].append(wrk(port, CHAT, "plain-keyed", 32, procs_usage[name].pid))
        m = {name: {f: statistics.median(x[f] for x in runs[name]) for f in ["rps", "cpu"]} for name in runs}
        ratio = m["on"]["rps"] / m["off"]["rps"]
        lines = [f"\n## Usage accounting's budget, named key and log on and off, ~1 KB chat at c=32 (commit {commit}; medians of {rounds} "
                 f"alternating round(s) of {duration} s)\n",
                 "| config | req/s | / off | CPU µs/req | added |", "|---|---|---|---|---|"]
        for name in ["off", "on"]:
            lines.append(f"| {USAGE_LABELS[name]} | {m[name]['rps']:,.0f} | {m[name]['rps'] / m['off']['rps']:.3f} | "
                         f"{m[name]['cpu']:.1f} | {m[name]['cpu'] - m['off']['cpu']:+.1f} µs |")
        verdict = ("chat req/s, usage on / off", f"{ratio:.3f}", "≥ 0.97", ratio >= 0.97)
        return lines, verdict

    if usage_only:
        lines, (name, value, target, ok) = usage_on_off()
        print("\n".join(lines))
        print(f"\n| {name} | {value} | {target} | {'met' if ok else 'MISSED'} |")
        raise SystemExit(0)
    hops = [("direct", {"plain": UP_PLAIN, "stream": UP_STREAM}, None),
            ("nginx", {"plain": NG_PLAIN, "stream": NG_STREAM}, ng_worker),
            ("hunyuan-proxy", {"plain": PX_PLAIN, "stream": PX_STREAM}, None),
            ("hunyuan-proxy, multi-thread runtime", {"plain": MT_PLAIN, "stream": MT_STREAM}, None),
            ("hunyuan-proxy, traces on (sample all)", {"plain": TR_PLAIN, "stream": TR_STREAM}, None)]
    ready_ms, rss_idle, rss_held = startup_and_memory()
    results = {}
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        for scenario in ["plain", "stream"]:
            for hop, ports, pid in hops:
                port = ports[scenario]
                if hop.startswith("hunyuan-proxy"):
                    pid = px[port].pid
                c1 = wrk(port, CHAT, scenario, 1)
                c32 = wrk(port, CHAT, scenario, 32, pid)
                results.setdefault((scenario, hop), []).append(
                    {"p50": c1["p50"], "p99": c1["p99"], "rps": c32["rps"], "cpu": c32["cpu"]})
        for name, path in [("chat", CHAT), ("messages", "/v1/messages"), ("responses", "/v1/responses")]:
            results.setdefault(("dialect", name), []).append(wrk(PX_PLAIN, path, name, 32, px[PX_PLAIN].pid))

    med = lambda key, field: (statistics.median([x[field] for x in results[key]])
                              if all(x[field] is not None for x in results[key]) else None)
    f0 = lambda v, fmt="{:.0f}": "—" if v is None else fmt.format(v)

    print(f"\n## hunyuan-proxy against nginx (commit {commit}; medians of {rounds} round(s) of {duration} s; {qos_note})")
    print("Proxy and nginx on CPU 1, upstream (nginx, canned answer) and wrk -t1 on CPU 0. Latency at c=1,")
    print("throughput and CPU at c=32. Stream: a 20-event SSE answer; events/s = req/s × 20.\n")
    print("| scenario | hop | p50 | added p50 | p99 | p99 / nginx's | req/s | / nginx | CPU µs/req | / nginx |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for scenario, label in [("plain", "non-stream"), ("stream", "stream")]:
        d50 = med((scenario, "direct"), "p50")
        n = {f: med((scenario, "nginx"), f) for f in ["p50", "p99", "rps", "cpu"]}
        for hop, _, _ in hops:
            m = {f: med((scenario, hop), f) for f in ["p50", "p99", "rps", "cpu"]}
            rps = m["rps"] * (EVENTS if scenario == "stream" else 1)
            unit = " events/s" if scenario == "stream" else ""
            print(f"| {label} | {hop} | {m['p50']:.0f} µs | {m['p50'] - d50:+.0f} µs | {m['p99']:.0f} µs | "
                  f"{m['p99'] / n['p99']:.2f}× | {rps:,.0f}{unit} | {m['rps'] / n['rps']:.2f} | {f0(m['cpu'], '{:.1f}')} | "
                  f"{f0(m['cpu'] and m['cpu'] / n['cpu'], '{:.2f}×')} |")
            if hop == "hunyuan-proxy":
                added, nadded = m["p50"] - d50, n["p50"] - d50
                what = "req/s" if scenario == "plain" else "events/s"
                verdicts += [(f"{label}: {what} / nginx's", f"{m['rps'] / n['rps']:.2f}", "≥ 0.60", m["rps"] / n["rps"] >= 0.6),
                             (f"{label}: added p50 (nginx's {nadded:+.0f} µs)", f"{added:+.0f} µs", f"≤ {nadded + 20:+.0f} µs", added <= nadded + 20),
                             (f"{label}: p99 / nginx's", f"{m['p99'] / n['p99']:.2f}×", "≤ 1.5×", m["p99"] / n["p99"] <= 1.5)]

    verdicts += traces_throughput(med)

    print("\n## The dialect routes, a 10-message tool conversation, hunyuan-proxy at c=32\n")
    print("| route | req/s | / chat | CPU µs/req | added over chat |")
    print("|---|---|---|---|---|")
    chat = {f: med(("dialect", "chat"), f) for f in ["rps", "cpu"]}
    for name, path in [("chat", CHAT), ("messages", "/v1/messages"), ("responses", "/v1/responses")]:
        m = {f: med(("dialect", name), f) for f in ["rps", "cpu"]}
        print(f"| `{path}` | {m['rps']:,.0f} | {m['rps'] / chat['rps']:.2f} | {m['cpu']:.1f} | {m['cpu'] - chat['cpu']:+.1f} µs |")
        if name != "chat":
            verdicts.append((f"`{path}` req/s / chat's", f"{m['rps'] / chat['rps']:.2f}", "≥ 0.90", m["rps"] / chat["rps"] >= 0.9))

    print(f"\n## Start-up and memory, the binary in its own process\n")
    print("| figure | measured | target |")
    print("|---|---|---|")
    print(f"| spawn to the first 200 on `/health/ready` | {ready_ms:.0f} ms | ≤ 100 ms |")
    print(f"| RSS idle after start | {rss_idle:.1f} MiB | ≤ 30 MiB |")
    print(f"| RSS with {OPEN_STREAMS:,} streams open | {rss_held:.1f} MiB | ≤ 120 MiB |")
    verdicts += [("ready after start", f"{ready_ms:.0f} ms", "≤ 100 ms", ready_ms <= 100),
                 ("RSS idle", f"{rss_idle:.1f} MiB", "≤ 30 MiB", rss_idle <= 30),
                 (f"RSS with {OPEN_STREAMS:,} open streams", f"{rss_held:.1f} MiB", "≤ 120 MiB", rss_held <= 120)]

    usage_lines, usage_verdict = usage_on_off()
    print("\n".join(usage_lines))
    verdicts.append(usage_verdict)

    print("\n## Targets (issues 17 and 22)\n")
    print("| figure | measured | target | |")
    print("|---|---|---|---|")
    for name, value, target, ok in verdicts:
        print(f"| {name} | {value} | {target} | {'met' if ok else 'MISSED'} |")
    if quick:
        print("\n(quick mode: 1 s runs are too short for the figures to mean anything; this run checks that the bench works)")
finally:
    cleanup()
PYTHON
