//! The route table walked as a client would: every route (aliases included) is served, and
//! each answers its errors (401, 404 of an unknown id, 400 of a bad body) in its dialect's shape.

use crate::common::{TestProxy, ADMIN_TOKEN};
use http::Method;
use hunyuan_proxy::config::Secret;
use hunyuan_proxy::server::{Access, Dialect, ErrorShape, Route, ROUTES};
use serde_json::{json, Value};

const CLIENT_KEY: &str = "sk-route-walker";
const MODEL: &str = "hunyuan-turbos-latest";

/// A valid request body for a route of `dialect`.
fn valid_body(dialect: Dialect) -> Value {
    match dialect {
        Dialect::Chat => json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        Dialect::Completions => json!({"model": MODEL, "prompt": "hi"}),
        Dialect::Messages => json!({"model": MODEL, "max_tokens": 64,
                                    "messages": [{"role": "user", "content": "hi"}]}),
        Dialect::Responses => json!({"model": MODEL, "input": "hi"}),
        _ => json!({}),
    }
}

struct Walker {
    t: TestProxy,
    stored_id: String,
}

impl Walker {
    async fn start() -> Self {
        let t = TestProxy::start_with(|c| c.client_api_keys = vec![Secret::new(CLIENT_KEY)]).await;
        let stored_id = Self::store(&t).await;
        Walker { t, stored_id }
    }

    /// Stores a response and returns its id.
    async fn store(t: &TestProxy) -> String {
        let created: Value = t
            .client
            .post(t.url("/v1/responses"))
            .bearer_auth(CLIENT_KEY)
            .json(&valid_body(Dialect::Responses))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"]
            .as_str()
            .expect("a stored response")
            .to_owned()
    }

    /// Sends `method path` with `key` as the route's credential (none when `None`).
    async fn send(
        &self,
        route: &Route,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let mut request = self.t.client.request(method, self.t.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        request.send().await.expect("proxy answers")
    }

    fn key_for(route: &Route) -> Option<&'static str> {
        match route.access {
            Access::Client => Some(CLIENT_KEY),
            Access::Admin => Some(ADMIN_TOKEN),
            _ => None,
        }
    }

    /// A valid request for `route` on `path`; a `DELETE` gets a response of its own to delete.
    async fn valid_request(&self, route: &Route, path: &str) -> (String, Option<Vec<u8>>) {
        let id = match route.method {
            Method::DELETE => Self::store(&self.t).await,
            _ => self.stored_id.clone(),
        };
        let path = path.replace("{id}", &id);
        let body = (route.method == Method::POST)
            .then(|| serde_json::to_vec(&valid_body(route.dialect)).unwrap());
        (path, body)
    }
}

/// Asserts `response` is an error with `status` in `shape`, and returns its body.
async fn expect_shape(
    response: reqwest::Response,
    status: u16,
    shape: ErrorShape,
    what: &str,
) -> Value {
    assert_eq!(response.status().as_u16(), status, "{what}: status");
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|_| panic!("{what}: JSON"));
    match shape {
        ErrorShape::Anthropic => {
            assert_eq!(body["type"], "error", "{what}: {body}");
            assert!(body["error"]["type"].is_string(), "{what}: {body}");
            assert!(body["error"]["message"].is_string(), "{what}: {body}");
            assert!(body["error"].get("code").is_none(), "{what}: {body}");
        }
        _ => {
            assert!(body.get("type").is_none(), "{what}: {body}");
            let error = &body["error"];
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}: {body}"
            );
            assert!(error["type"].is_string(), "{what}: {body}");
            assert!(error.get("param").is_some(), "{what}: {body}");
            assert!(error.get("code").is_some(), "{what}: {body}");
        }
    }
    body
}

#[tokio::test]
async fn every_route_and_alias_is_served() {
    let w = Walker::start().await;
    for route in ROUTES {
        for path in route.paths() {
            let (url_path, body) = w.valid_request(route, path).await;
            let what = format!("{} {url_path}", route.method);
            let response = w.send(route, &url_path, Walker::key_for(route), body).await;
            let status = response.status().as_u16();
            assert!(
                status != 404 && status != 405 && status < 500,
                "{what}: {status}"
            );
            if route.listed {
                assert!(response.status().is_success(), "{what}: {status}");
            }
        }
    }
}

#[tokio::test]
async fn every_route_answers_401_in_its_dialect() {
    let w = Walker::start().await;
    for route in ROUTES.iter().filter(|r| r.access != Access::Open) {
        for path in route.paths() {
            let (url_path, body) = w.valid_request(route, path).await;
            let what = format!("{} {url_path} without a key", route.method);
            let response = w.send(route, &url_path, None, body.clone()).await;
            expect_shape(response, 401, route.dialect.error_shape(), &what).await;
            let what = format!("{} {url_path} with a wrong key", route.method);
            let response = w.send(route, &url_path, Some("sk-wrong"), body).await;
            expect_shape(response, 401, route.dialect.error_shape(), &what).await;
        }
    }
}

#[tokio::test]
async fn every_post_route_answers_400_of_a_bad_body_in_its_dialect() {
    let w = Walker::start().await;
    for route in ROUTES.iter().filter(|r| r.method == Method::POST) {
        for path in route.paths() {
            let url_path = path.replace("{id}", &w.stored_id);
            let what = format!("{} {url_path} with a cut-off body", route.method);
            let response = w
                .send(
                    route,
                    &url_path,
                    Walker::key_for(route),
                    Some(b"{\"model\":".to_vec()),
                )
                .await;
            expect_shape(response, 400, route.dialect.error_shape(), &what).await;
        }
    }
}

#[tokio::test]
async fn unknown_ids_are_404_in_the_responses_shape_on_every_path() {
    let w = Walker::start().await;
    // The routes that take an id in the path…
    for route in ROUTES.iter().filter(|r| r.path.ends_with("/{id}")) {
        for path in route.paths() {
            let url_path = path.replace("{id}", "resp_unknown");
            let what = format!("{} {url_path}", route.method);
            let response = w.send(route, &url_path, Walker::key_for(route), None).await;
            expect_shape(response, 404, route.dialect.error_shape(), &what).await;
        }
    }
    // …and the one that takes it in the body (`previous_response_id`), aliases included.
    let create = ROUTES
        .iter()
        .find(|r| r.method == Method::POST && r.path == "/v1/responses")
        .unwrap();
    for path in create.paths() {
        let body = json!({"model": MODEL, "input": "hi", "previous_response_id": "resp_unknown"});
        let response = w
            .send(
                create,
                path,
                Some(CLIENT_KEY),
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
        let body = expect_shape(response, 404, ErrorShape::OpenAi, path).await;
        assert_eq!(
            body["error"]["code"], "previous_response_not_found",
            "{path}"
        );
        assert_eq!(body["error"]["param"], "previous_response_id", "{path}");
    }
}

#[tokio::test]
async fn the_route_list_is_the_table() {
    let t = TestProxy::start().await;
    let root: Value = t.get("/").await.json().await.unwrap();
    let listed: Vec<(String, String)> = root["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let table: Vec<(String, String)> = ROUTES
        .iter()
        .filter(|r| r.listed)
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(listed, table);
    assert!(listed.contains(&("POST".into(), "/v1/responses".into())));
}
