//! The operator's dashboard: `GET /dashboard` (one HTML page embedded in the binary, no
//! network fetch beyond this proxy), its sign-in (`POST /dashboard/login`,
//! `POST /dashboard/logout`) and the time series it charts (`GET /admin/timeseries`).
//!
//! The page is behind the admin token. A browser signs in with a form that posts the token;
//! the answer sets a session cookie (`HttpOnly`, `SameSite=Strict`, `Path=/`, twelve hours,
//! `Secure` when the request came through an https proxy that says so in
//! `X-Forwarded-Proto`). The cookie holds an expiry and an HMAC-SHA256 of it keyed with the
//! admin token, not the token: it is checked without server-side state (so it works on every
//! replica and across restarts), expires on its own, and stops working when the token
//! changes. `Authorization: Bearer <admin_token>` works as well.
//!
//! The admin data routes the page reads (`/admin/*`, `/cache/stats`) accept the cookie only
//! together with the `x-hunyuan-proxy-dashboard` request header, which the page sends: a
//! page of another site can neither send the cookie (`SameSite=Strict`) nor add that header
//! (it is not in the CORS allow list, so the browser refuses the preflight). `DELETE /cache`
//! takes only the bearer token.

use super::Proxy;
use crate::error::ProxyError;
use crate::secret::{constant_time_eq, Secret};
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The page, with its styles and script inline.
const PAGE: &str = include_str!("dashboard.html");

/// The session cookie's name.
pub(crate) const COOKIE: &str = "hunyuan_proxy_dashboard";
/// The request header the page sends with its reads, without which the cookie is not taken.
pub(crate) const DASHBOARD_HEADER: &str = "x-hunyuan-proxy-dashboard";
/// How long a session lasts.
const SESSION: Duration = Duration::from_secs(12 * 3600);
/// The version tag at the start of a session value.
const SESSION_VERSION: &str = "v1";

/// The page's Content-Security-Policy: inline script and styles only, requests to this
/// origin only, no frames: the page cannot load anything from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   img-src data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

/// The sign-in form's own posts (HTML answers, so outside the JSON route table).
pub(crate) fn form_routes() -> Router<Proxy> {
    Router::new()
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn tag(token: &Secret, expires: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"hunyuan-proxy dashboard session ");
    mac.update(SESSION_VERSION.as_bytes());
    mac.update(b" ");
    mac.update(expires.to_string().as_bytes());
    let tag = mac.finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session value that expires at `expires` (unix seconds).
fn session_value(token: &Secret, expires: u64) -> String {
    format!("{SESSION_VERSION}.{expires}.{}", tag(token, expires))
}

/// Whether `value` is an unexpired session made with `token`.
fn session_valid(token: &Secret, value: &str, now: u64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some(SESSION_VERSION), Some(expires), Some(presented)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    expires > now
        && expires <= now + SESSION.as_secs()
        && constant_time_eq(tag(token, expires).as_bytes(), presented.as_bytes())
}

/// The session cookie's value in `headers`, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether `headers` carry a valid dashboard session.
pub(crate) fn has_session(token: &Secret, headers: &HeaderMap) -> bool {
    session_cookie(headers).is_some_and(|v| session_valid(token, v, unix_now()))
}

/// Whether `headers` carry the admin bearer token.
pub(crate) fn has_bearer(token: &Secret, headers: &HeaderMap) -> Option<bool> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|p| token.matches(p.trim()))
}

/// The admin token, or the 404 that says the admin routes (and the dashboard) are off.
fn admin_token(proxy: &Proxy) -> Result<&Secret, ProxyError> {
    proxy
        .config()
        .admin_token
        .as_ref()
        .ok_or_else(|| ProxyError::NotFound {
            message: "the dashboard and admin routes are off: set admin_token to turn them on"
                .into(),
        })
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The sign-in page; `error` is shown above the form.
fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="err" role="alert">{e}</p>"#))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>hunyuan-proxy · sign in</title>
<style>
:root{{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--mute:#6b7385;--line:#dde1e8;--acc:#2f6fde;--bad:#c8372d}}
@media (prefers-color-scheme:dark){{:root{{--bg:#111418;--card:#1a1f26;--fg:#e6e9ef;--mute:#8c94a4;--line:#2c333d;--acc:#5b93f0;--bad:#ef6b5f}}}}
body{{margin:0;min-height:100vh;display:grid;place-items:center;background:var(--bg);color:var(--fg);font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif}}
form{{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:28px 30px;width:320px}}
h1{{font-size:18px;margin:0 0 4px}}p{{margin:0 0 18px;color:var(--mute);font-size:13px}}
input{{box-sizing:border-box;width:100%;padding:9px 10px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg);font:inherit}}
button{{margin-top:14px;width:100%;padding:9px;border:0;border-radius:6px;background:var(--acc);color:#fff;font:inherit;font-weight:600;cursor:pointer}}
.err{{color:var(--bad);font-size:13px}}
</style></head>
<body><form id="login" method="post" action="/dashboard/login">
<h1>hunyuan-proxy</h1><p>Dashboard · sign in with the admin token</p>{error}
<input type="password" name="token" autocomplete="current-password" placeholder="admin token" aria-label="admin token" required autofocus>
<button type="submit">Sign in</button>
</form></body></html>
"#
    )
}

/// `GET /dashboard`: the page with a session or the admin bearer token, the sign-in form
/// without (no data either way: the page fetches its figures itself).
pub(crate) async fn page(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    let token = admin_token(&proxy)?;
    if has_session(token, &headers) || has_bearer(token, &headers) == Some(true) {
        Ok(html(StatusCode::OK, PAGE.to_owned()))
    } else {
        Ok(html(StatusCode::OK, login_page(None)))
    }
}

/// The sign-in form's fields.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /dashboard/login`: with the right token, sets the session cookie and sends the
/// browser to the page; with a wrong one, the form again (401).
async fn login(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ProxyError> {
    let token = admin_token(&proxy)?;
    let Ok(Form(form)) = form else {
        return Ok(html(
            StatusCode::BAD_REQUEST,
            login_page(Some(
                "Sign in with the form: it posts the admin token as `token`.",
            )),
        ));
    };
    if !token.matches(form.token.trim()) {
        tracing::warn!("dashboard sign-in with a wrong admin token");
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not the admin token.")),
        ));
    }
    let value = session_value(token, unix_now() + SESSION.as_secs());
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    Ok(redirect(cookie))
}

/// `POST /dashboard/logout`: clears the cookie (the page's "sign out").
async fn logout() -> Response {
    redirect(format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    ))
}

fn redirect(cookie: String) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /admin/timeseries`: the last hour in 10-second buckets (admin token or the page's
/// session).
pub(crate) async fn timeseries(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
) -> Result<Response, ProxyError> {
    super::admin::check_admin(&proxy, &headers)?;
    let Some(monitor) = proxy.monitor() else {
        return Err(ProxyError::NotFound {
            message: "monitoring is off: set enable_monitoring = true for the time series".into(),
        });
    };
    Ok(Json(monitor.timeseries()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_bound_to_the_token_and_expires() {
        let token = Secret::new("admin-token-1");
        let now = 1_800_000_000;
        let value = session_value(&token, now + 60);
        assert!(!value.contains("admin-token-1"));
        assert!(session_valid(&token, &value, now));
        // Expired, or made with another token, or tampered with: refused.
        assert!(!session_valid(&token, &value, now + 60));
        assert!(!session_valid(&Secret::new("admin-token-2"), &value, now));
        let later = value.replace(&format!(".{}.", now + 60), &format!(".{}.", now + 120));
        assert!(!session_valid(&token, &later, now));
        // An expiry beyond one session from now was not made by this proxy.
        let far = session_value(&token, now + SESSION.as_secs() + 10);
        assert!(!session_valid(&token, &far, now));
        for bad in ["", "v1", "v1.x.y", "v2.1.2", token.expose()] {
            assert!(!session_valid(&token, bad, now), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let token = Secret::new("admin-token-1");
        let value = session_value(&token, unix_now() + 60);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={value}; c=d")).unwrap(),
        );
        assert!(has_session(&token, &headers));
        assert!(!has_session(&Secret::new("other-token"), &headers));
    }

    #[test]
    fn the_page_fits_the_budget_and_loads_nothing_from_elsewhere() {
        assert!(PAGE.len() < 150 * 1024, "{} bytes", PAGE.len());
        // The SVG namespace is a name, not a fetch.
        let page = PAGE.replace("http://www.w3.org/2000/svg", "");
        for outside in [
            "http:",
            "https:",
            "//cdn",
            "<link rel=\"stylesheet\"",
            "@import",
        ] {
            assert!(!page.contains(outside), "the page refers to {outside}");
        }
    }
}
