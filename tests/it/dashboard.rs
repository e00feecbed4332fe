//! The dashboard in a real browser: headless Chromium, driven over the DevTools protocol,
//! signs in through the page's form and reads the figures the page shows, which must match
//! the traffic this test sent through the proxy (to the mock). The page must log no console
//! error. Skips with a message when no Chromium is installed (`.ci/run` installs Debian's
//! `chromium` where it can); `HUNYUAN_PROXY_CHROMIUM` names another binary.
//!
//! Set `HUNYUAN_PROXY_DASHBOARD_SCREENSHOT=/tmp/dash.png` to keep a screenshot of the page.

use crate::common::{simple_chat, TestProxy, ADMIN_TOKEN};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const CHAT: &str = "/v1/chat/completions";

/// The Chromium binary, if one is installed.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HUNYUAN_PROXY_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|p| p.is_file())
}

/// A headless Chromium and one DevTools session on a page of it.
struct Browser {
    _child: tokio::process::Child,
    profile: PathBuf,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next_id: u64,
    /// Every event received so far (console calls, exceptions, log entries…).
    events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn launch(binary: &PathBuf) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "hunyuan-proxy-dashboard-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        // Chromium prints the browser's DevTools address on stderr.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited without a DevTools address");
        })
        .await
        .expect("chromium says where DevTools listens");
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("DevTools websocket");
        let mut browser = Browser {
            _child: child,
            profile,
            ws,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
        };
        let target = browser
            .call_browser("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .call_browser(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    async fn send(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::String(session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("DevTools accepts a command");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("DevTools connection open")
                .expect("DevTools frame");
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                assert!(
                    value.get("error").is_none(),
                    "{method} failed: {}",
                    value["error"]
                );
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    async fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params).await
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(session), method, params).await
    }

    /// Evaluates `expression` in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "`{expression}` threw: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    async fn wait_for(&mut self, expression: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(&format!("!!({expression})")).await == true {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{expression}` not true after {within:?}; page text: {}",
                self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                    .await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            Duration::from_secs(40),
        )
        .await;
    }

    /// Signs in on the page's form by typing the admin token, and waits for the first data.
    async fn sign_in(&mut self) {
        self.eval("document.querySelector('input[name=token]').focus()")
            .await;
        self.call("Input.insertText", json!({"text": ADMIN_TOKEN}))
            .await;
        self.eval("document.getElementById('login').requestSubmit()")
            .await;
        self.wait_for(
            "document.getElementById('kpis') && document.body.dataset.ready === '1'",
            Duration::from_secs(40),
        )
        .await;
    }

    /// The console errors, uncaught exceptions and error log entries seen so far.
    fn console_errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .collect()
    }
}

/// Sums the upstream's `usage` of non-streamed answers by model.
#[derive(Default)]
struct Sent {
    requests: u64,
    calls: BTreeMap<String, u64>,
    input_tokens: BTreeMap<String, u64>,
    output_tokens: BTreeMap<String, u64>,
}

async fn chat(t: &TestProxy, sent: &mut Sent, model: &str, stream: bool) {
    let mut body = simple_chat(stream);
    body["model"] = json!(model);
    let response = t.post(CHAT, &body).await;
    assert_eq!(response.status(), 200);
    sent.requests += 1;
    *sent.calls.entry(model.to_owned()).or_default() += 1;
    if stream {
        assert!(response.text().await.unwrap().contains("[DONE]"));
    } else {
        let answer: Value = response.json().await.unwrap();
        let usage = &answer["usage"];
        *sent.input_tokens.entry(model.to_owned()).or_default() +=
            usage["prompt_tokens"].as_u64().unwrap();
        *sent.output_tokens.entry(model.to_owned()).or_default() +=
            usage["completion_tokens"].as_u64().unwrap();
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_traffic_sent_in_a_real_browser() {
    let t = TestProxy::start().await;

    // Without a session: the sign-in form and no figures; the data routes refuse.
    let anonymous = t.get("/dashboard").await;
    assert_eq!(anonymous.status(), 200);
    let csp = anonymous.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = anonymous.text().await.unwrap();
    assert!(html.contains(r#"id="login""#), "{html}");
    assert!(!html.contains("kpi-requests"), "{html}");
    assert_eq!(t.get("/admin/timeseries").await.status(), 401);
    let wrong = t
        .client
        .post(t.url("/dashboard/login"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let malformed = t
        .post_raw("/dashboard/login", "application/json", b"{}".to_vec())
        .await;
    assert_eq!(malformed.status(), 400);
    assert!(malformed.text().await.unwrap().contains(r#"id="login""#));

    // Traffic: two models, plain and streamed, and one bad request.
    let mut sent = Sent::default();
    for _ in 0..3 {
        chat(&t, &mut sent, "hunyuan-turbos-latest", false).await;
    }
    chat(&t, &mut sent, "hunyuan-t1-latest", false).await;
    chat(&t, &mut sent, "hunyuan-t1-latest", true).await;
    let bad = t.post_raw(CHAT, "application/json", b"{".to_vec()).await;
    assert_eq!(bad.status(), 400);
    let total = sent.requests + 1;

    // The session cookie: not the token, and only with the page's header on data routes.
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(t.url("/dashboard/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains(ADMIN_TOKEN), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |header: bool| {
        let request = t
            .client
            .get(t.url("/admin/timeseries"))
            .header("cookie", session.as_str());
        if header {
            request.header("x-hunyuan-proxy-dashboard", "1")
        } else {
            request
        }
    };
    assert_eq!(with_cookie(false).send().await.unwrap().status(), 401);
    let series: Value = with_cookie(true)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series["last_hour"]["requests"], total, "{series}");
    assert_eq!(series["last_hour"]["ttft"]["count"], 1, "{series}");
    // Changing state takes the bearer token, never the cookie.
    let clear = t
        .client
        .delete(t.url("/cache"))
        .header("cookie", session.as_str())
        .header("x-hunyuan-proxy-dashboard", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(clear.status(), 401);
    // `/status` shows usage and budgets to the dashboard's session (cookie and header, as the
    // page sends them) and leaves them out for the cookie alone, as for anyone.
    let status_as = |header: bool| {
        let request = t
            .client
            .get(t.url("/status"))
            .header("cookie", session.as_str());
        if header {
            request.header("x-hunyuan-proxy-dashboard", "1")
        } else {
            request
        }
    };
    let cookie_only: Value = status_as(false).send().await.unwrap().json().await.unwrap();
    assert!(
        cookie_only.get("usage").is_none() && cookie_only.get("budgets").is_none(),
        "{cookie_only}"
    );
    let status: Value = status_as(true).send().await.unwrap().json().await.unwrap();
    assert!(status["usage"].is_object(), "{status}");
    assert!(status["budgets"].is_object(), "{status}");

    let Some(binary) = chromium() else {
        eprintln!(
            "skipping the browser half of the dashboard test: no chromium on PATH \
             (apt-get install chromium, or set HUNYUAN_PROXY_CHROMIUM)"
        );
        return;
    };
    let mut browser = Browser::launch(&binary).await;

    // Unauthenticated in the browser: the form, nothing else.
    browser.navigate(&t.url("/dashboard")).await;
    let anonymous = browser
        .eval("[!!document.getElementById('login'), !!document.getElementById('kpis'), document.body.innerText.includes('hunyuan-turbos-latest')]")
        .await;
    assert_eq!(anonymous, json!([true, false, false]));

    browser.sign_in().await;

    // The figures shown.
    let shown = browser
        .eval(
            r#"(() => {
                const text = (sel) => { const el = document.querySelector(sel); return el ? el.textContent.trim() : null; };
                const models = {};
                document.querySelectorAll('#models tr[data-model]').forEach((tr) => {
                    const cell = (f) => { const td = tr.querySelector('td[data-f=' + f + ']'); return td ? (td.title || td.textContent).trim() : null; };
                    models[tr.dataset.model] = {calls: cell('calls'), input: cell('input_tokens'), output: cell('output_tokens'), cost: cell('cost')};
                });
                return {
                    requests: text('#kpi-requests .v'),
                    health: text('#health-pill'),
                    upstream: text('#health tr[data-component=upstream] td[data-f=status]'),
                    keys: document.querySelectorAll('#upstream tr[data-key-index]').length,
                    ttft: text('#kpi-ttft .v'),
                    bars: document.querySelectorAll('#chart-req rect').length,
                    lines: document.querySelectorAll('#chart-lat path').length,
                    models,
                    budgets: [...document.querySelectorAll('#budgets [data-budget]')].map((b) => b.dataset.budget),
                    log: document.querySelectorAll('#log tr[data-id]').length,
                };
            })()"#,
        )
        .await;
    assert_eq!(shown["requests"], total.to_string(), "{shown}");
    assert_eq!(shown["health"], "healthy", "{shown}");
    assert_eq!(shown["upstream"], "healthy", "{shown}");
    assert_eq!(shown["keys"], 1, "{shown}");
    assert_ne!(shown["ttft"], "–", "the stream's first token: {shown}");
    assert!(
        shown["bars"].as_u64().unwrap() >= 2,
        "ok and 4xx bars: {shown}"
    );
    assert!(shown["lines"].as_u64().unwrap() >= 4, "{shown}");
    for (model, calls) in &sent.calls {
        assert_eq!(
            shown["models"][model]["calls"],
            calls.to_string(),
            "{model}: {shown}"
        );
    }

    // Usage, budgets and the request log, where this server reports them.
    if let Some(usage) = status.get("usage").filter(|u| !u.is_null()) {
        for (model, input) in &sent.input_tokens {
            let model_usage = &usage["today"]["by_model"][model];
            // Streams add usage the test did not read; compare what it did read as a floor.
            let shown_input: u64 = shown["models"][model]["input"]
                .as_str()
                .unwrap()
                .replace(',', "")
                .parse()
                .unwrap();
            assert!(shown_input >= *input, "{model}: {shown} vs {model_usage}");
            let shown_output: u64 = shown["models"][model]["output"]
                .as_str()
                .unwrap()
                .replace(',', "")
                .parse()
                .unwrap();
            assert!(
                shown_output >= sent.output_tokens[model],
                "{model}: {shown}"
            );
            assert_ne!(shown["models"][model]["cost"], "–", "{model}: {shown}");
        }
        let plain_only = "hunyuan-turbos-latest";
        let shown_input = shown["models"][plain_only]["input"]
            .as_str()
            .unwrap()
            .replace(',', "");
        assert_eq!(
            shown_input,
            sent.input_tokens[plain_only].to_string(),
            "{shown}"
        );
        browser
            .wait_for(
                &format!(
                    "document.querySelectorAll('#log tr[data-id]').length >= {}",
                    sent.requests
                ),
                Duration::from_secs(30),
            )
            .await;
        // The filter by model keeps that model's rows only.
        let filtered = browser
            .eval(&format!(
                "(() => {{ const s = document.getElementById('f-model'); s.value = '{plain_only}'; s.dispatchEvent(new Event('change')); return [...document.querySelectorAll('#log tr[data-id] td[data-f=model]')].map((td) => td.textContent); }})()"
            ))
            .await;
        let rows = filtered.as_array().unwrap();
        assert_eq!(rows.len() as u64, sent.calls[plain_only], "{filtered}");
        assert!(rows
            .iter()
            .all(|r| r.as_str().unwrap().contains(plain_only)));
    } else {
        eprintln!("this server reports no usage: the usage and request-log checks are skipped");
    }
    if let Some(budgets) = status.get("budgets").and_then(Value::as_object) {
        let mut want: Vec<String> = budgets
            .iter()
            .flat_map(|(key, list)| {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .map(move |b| format!("{key}:{}", b["budget"].as_str().unwrap_or("")))
            })
            .collect();
        want.sort();
        let mut got: Vec<String> = shown["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, want, "{shown}");
    }

    if let Some(path) = std::env::var_os("HUNYUAN_PROXY_DASHBOARD_SCREENSHOT") {
        let shot = browser
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    // Let a refresh or two run, then look at the console.
    let refreshes = browser
        .eval("Number(document.body.dataset.refreshes)")
        .await;
    browser
        .wait_for(
            &format!("Number(document.body.dataset.refreshes) > {refreshes}"),
            Duration::from_secs(30),
        )
        .await;
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// Token totals: input, output, cached input, reasoning.
type Tokens = [u64; 4];

fn add(total: &mut Tokens, usage: &hunyuan_proxy::mock::SentUsage) {
    total[0] += usage.prompt_tokens;
    total[1] += usage.completion_tokens;
    total[2] += usage.cached_tokens;
    total[3] += usage.reasoning_tokens;
}

/// A usage block of `/status` (`input_tokens`…) as [`Tokens`].
fn tokens_of(block: &Value) -> Tokens {
    [
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
    ]
    .map(|f| block[f].as_u64().unwrap_or(0))
}

/// The usage `/metrics` counts for `key`, by kind, as [`Tokens`].
fn counted(metrics: &str, key: &str) -> Tokens {
    ["input", "output", "cached_input", "reasoning"]
        .map(|kind| crate::usage::usage_counted(metrics, key, kind))
}

/// The issue's "done when": two replicas on one Redis serve chat, Messages and Responses
/// requests (streamed and not, one with an image) from three named keys, one with a small
/// budget. `/status` on both replicas and the usage counters agree with the usage the mock
/// sent, to the token; the budgeted key gets its dialect's 429 on either replica once its
/// budget is spent while the other keys go on; the dashboard in headless Chromium shows the
/// same figures.
#[tokio::test]
async fn two_replicas_keys_budgets_and_the_dashboard_agree_with_the_mocks_usage() {
    use crate::redis_support::RedisServer;
    use crate::usage::{admin_get, chat, image_chat, keyed, send, tokenhub_mock};
    use hunyuan_proxy::config::Secret;

    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = tokenhub_mock().await;
    let mut config = TestProxy::config_for(&mock);
    keyed(&mut config, "done");
    config.redis_url = Some(Secret::new(redis.url()));
    config.redis_timeout_ms = 500;
    let vision_model = config.vision_model().to_owned();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(TestProxy::start_on(mock.clone(), config.clone()).await);
    }
    let (a, b, tiny) = (
        "sk-done-a-secret",
        "sk-done-b-secret",
        "sk-done-tiny-secret",
    );
    let name = |key: &str| {
        key.trim_start_matches("sk-")
            .trim_end_matches("-secret")
            .to_owned()
    };

    let messages = |stream: bool| {
        json!({"model": "hy4", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "Hello from the Messages route"}]})
    };
    let responses = |stream: bool| json!({"model": "hy4", "input": "Hello from the Responses route", "stream": stream});
    // What the mock sent, by key (the describer's calls under `vision`) and by model.
    let mut by_key = BTreeMap::<String, Tokens>::new();
    let mut by_model = BTreeMap::<String, Tokens>::new();
    let mut requests = BTreeMap::<String, u64>::new();
    let traffic: Vec<(usize, &str, &str, Value)> = vec![
        (0, a, CHAT, chat(false)),
        (1, a, CHAT, chat(true)),
        (0, b, "/v1/messages", messages(false)),
        (1, b, "/v1/messages", messages(true)),
        (1, a, "/v1/responses", responses(false)),
        (0, b, "/v1/responses", responses(true)),
        (1, b, CHAT, image_chat()),
        (0, tiny, CHAT, chat(true)),
    ];
    let mut seen = 0;
    let mut sent =
        |key: &str, by_key: &mut BTreeMap<String, Tokens>, requests: &mut BTreeMap<String, u64>| {
            let usage = mock.usage_sent();
            for (model, u) in &usage[seen..] {
                if *model == vision_model {
                    add(by_key.entry("vision".into()).or_default(), u);
                } else {
                    add(by_key.entry(name(key)).or_default(), u);
                    add(by_model.entry(model.clone()).or_default(), u);
                    *requests.entry(name(key)).or_default() += 1;
                }
            }
            seen = usage.len();
        };
    for (replica, key, path, body) in &traffic {
        let response = send(&replicas[*replica], key, path, body).await;
        assert_eq!(response.status(), 200, "{key} {path} {body}");
        let text = response.text().await.unwrap();
        assert!(!text.is_empty());
        sent(key, &mut by_key, &mut requests);
    }
    assert!(
        by_key.get("vision").is_some_and(|t| t[0] > 0),
        "the image was described: {:?} {vision_model}",
        mock.usage_sent()
    );

    // The budgeted key's charge reaches Redis in a task of its own: wait for both replicas.
    let want_tiny = by_key[&name(tiny)];
    for replica in &replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokens_of(
            &admin_get(replica, "/status").await["usage"]["today"]["by_key"]["done-tiny"],
        ) != want_tiny
        {
            assert!(
                Instant::now() < deadline,
                "the budgeted key's usage never showed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Spent: refused in each dialect, on either replica, before anything goes upstream.
    let upstream_before = mock.request_count();
    for (replica, path, body) in [
        (1, "/v1/messages", messages(false)),
        (0, "/v1/responses", responses(true)),
        (1, CHAT, chat(false)),
        (0, CHAT, chat(true)),
    ] {
        let refused = send(&replicas[replica], tiny, path, &body).await;
        assert_eq!(refused.status(), 429, "replica {replica} {path}");
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=86_400).contains(&retry), "{retry}");
        let error: Value = refused.json().await.unwrap();
        if path == "/v1/messages" {
            assert_eq!(error["type"], "error", "Anthropic's envelope: {error}");
            assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
        } else {
            assert!(error.get("type").is_none(), "OpenAI's envelope: {error}");
            assert!(
                error["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("tokens_per_day"),
                "{error}"
            );
        }
    }
    assert_eq!(
        mock.request_count(),
        upstream_before,
        "refusals never reach upstream"
    );
    // The other keys go on, on both replicas.
    for (replica, key, path, body) in [
        (1, a, CHAT, chat(false)),
        (0, b, "/v1/messages", messages(false)),
    ] {
        let response = send(&replicas[replica], key, path, &body).await;
        assert_eq!(response.status(), 200, "{key} on replica {replica}");
        response.bytes().await.unwrap();
        sent(key, &mut by_key, &mut requests);
    }

    // `/status` on both replicas: the shared totals, to the token.
    let mut status = Value::Null;
    for replica in &replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            status = admin_get(replica, "/status").await;
            let today = &status["usage"]["today"];
            let keys_agree = ["done-a", "done-b", "done-tiny"].iter().all(|k| {
                tokens_of(&today["by_key"][k]) == by_key[*k]
                    && today["by_key"][k]["requests"] == requests[*k]
            });
            let models_agree = by_model
                .iter()
                .all(|(m, t)| tokens_of(&today["by_model"][m]) == *t);
            if keys_agree && models_agree {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/status never agreed with the mock: {today} vs {by_key:?} {by_model:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tiny_budget = &status["budgets"]["done-tiny"][0];
        assert_eq!(tiny_budget["budget"], "tokens_per_day", "{tiny_budget}");
        assert_eq!(tiny_budget["remaining"], 0.0, "{tiny_budget}");
    }
    // The counters: both replicas run in this test's process and share its recorder, so one
    // `/metrics` holds both replicas' counts (the key names are this test's own).
    let metrics = replicas[0].get("/metrics").await.text().await.unwrap();
    for key in ["done-a", "done-b", "done-tiny"] {
        assert_eq!(counted(&metrics, key), by_key[key], "{key}");
    }
    let vision = counted(&metrics, "vision");
    assert!(
        vision[0] >= by_key["vision"][0] && vision[1] >= by_key["vision"][1],
        "the describer's tokens are counted as such (other tests add to them): {vision:?}"
    );

    let Some(binary) = chromium() else {
        eprintln!(
            "skipping the browser half of the replicas dashboard test: no chromium on PATH \
             (apt-get install chromium, or set HUNYUAN_PROXY_CHROMIUM)"
        );
        return;
    };
    let mut browser = Browser::launch(&binary).await;
    for (i, replica) in replicas.iter().enumerate() {
        browser.navigate(&replica.url("/dashboard")).await;
        // Cookies do not tell ports apart: the second replica gets the first one's session
        // cookie, which it takes if the replicas share the admin token (as here).
        browser
            .wait_for(
                "document.getElementById('login') || document.body.dataset.ready === '1'",
                Duration::from_secs(40),
            )
            .await;
        if browser.eval("!!document.getElementById('login')").await == true {
            browser.sign_in().await;
        }
        let shown = browser
            .eval(
                r#"(() => {
                    const rows = (sel, attr) => {
                        const out = {};
                        document.querySelectorAll(sel).forEach((tr) => {
                            const cell = (f) => { const td = tr.querySelector('td[data-f=' + f + ']'); return td ? (td.title || td.textContent).trim() : null; };
                            out[tr.dataset[attr]] = {requests: cell('requests'), input: cell('input_tokens'), output: cell('output_tokens'), cost: cell('cost')};
                        });
                        return out;
                    };
                    const remaining = {};
                    document.querySelectorAll('#budgets [data-budget]').forEach((b) => { remaining[b.dataset.budget] = b.querySelector('[data-f=remaining]').textContent.trim(); });
                    return {
                        models: rows('#models tr[data-model]', 'model'),
                        keys: rows('#keys tr[data-key]', 'key'),
                        remaining,
                        log: [...document.querySelectorAll('#log tr[data-id]')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())),
                    };
                })()"#,
            )
            .await;
        let today = &status["usage"]["today"];
        for (model, tokens) in &by_model {
            let row = &shown["models"][model];
            assert_eq!(row["input"], tokens[0].to_string(), "{model}: {shown}");
            assert_eq!(row["output"], tokens[1].to_string(), "{model}: {shown}");
            let cost: f64 = row["cost"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                Some(cost),
                today["by_model"][model]["cost"].as_f64(),
                "{model}: {shown}"
            );
        }
        for key in ["done-a", "done-b", "done-tiny"] {
            let row = &shown["keys"][key];
            assert_eq!(row["requests"], requests[key].to_string(), "{key}: {shown}");
            assert_eq!(row["input"], by_key[key][0].to_string(), "{key}: {shown}");
            assert_eq!(row["output"], by_key[key][1].to_string(), "{key}: {shown}");
        }
        assert_eq!(
            shown["remaining"]["done-tiny:tokens_per_day"], "0",
            "{shown}"
        );
        // The request log is the replica's own: its refusals of the budgeted key are there.
        let refusals = shown["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| {
                let cells: Vec<&str> = row
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap())
                    .collect();
                cells.contains(&"done-tiny") && cells.contains(&"429")
            })
            .count();
        assert_eq!(refusals, 2, "replica {i}: {shown}");
    }
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
