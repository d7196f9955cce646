//! The `http` task: one request (and its redirects) with hyper's client,
//! rustls on ring for https. 2xx is success.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chime_core::{JobContext, TaskError};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::command::OUTPUT_TAIL;
use crate::{Options, TargetPolicy};

/// Redirects followed when a job does not say: [`HttpSpec::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
/// The most redirects a job may ask to follow.
pub const MAX_REDIRECTS_LIMIT: u32 = 20;
/// How long connecting to a host (TCP) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take, redirects and reading the answer
/// included, when a job does not say: [`HttpSpec::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest [`HttpSpec::timeout`] a job may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The most of an answer's body that is read; the rest is never downloaded.
pub const MAX_RESPONSE_BODY: usize = 1 << 20;
/// The largest request body a job may send.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// What a secret reads as in a run's output or error.
const REDACTED: &str = "<redacted>";

/// Header and query names whose values are credentials, matched in lower
/// case: the list the web API redacts with, so a value hidden in a read is
/// never shown by a run either.
const SECRET_WORDS: [&str; 9] =
    ["auth", "cookie", "token", "secret", "key", "password", "passwd", "credential", "session"];

/// Headers the client writes itself: a job may not set them, so no job can
/// frame a request differently from what is sent.
const MANAGED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// The arguments of an `http` job.
///
/// The JSON (and TOML) shape: `{url, method = "GET", headers = {Name: value},
/// body, ca_cert, max_redirects = 5, timeout = "60s"}`, every field but `url`
/// optional. Check one with [`validate`] before storing it.
///
/// ```
/// let spec: chime_tasks::HttpSpec =
///     serde_json::from_value(serde_json::json!({"url": "https://example.com/hook", "method": "POST"}))?;
/// assert_eq!(spec.max_redirects, chime_tasks::DEFAULT_MAX_REDIRECTS);
/// assert!(chime_tasks::validate(&spec).is_ok());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The method, `GET` unless given (case-insensitive: sent upper-cased).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. `Host`, `Content-Length`, `Transfer-Encoding` and the
    /// connection headers are the client's own and refused here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The request body, sent as is. Without one, a run an alert asked for
    /// (an `on_alert` hook) sends `{"alert": {"job_id", "reason",
    /// "last_error", "since"}}` as `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A PEM file of extra certificate authorities to trust for https, beside
    /// the bundled Mozilla roots (for a private CA or a self-signed server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Redirects to follow (at most [`MAX_REDIRECTS_LIMIT`]); 0 follows none,
    /// so a 3xx answer fails the run. Never from https to http.
    #[serde(default = "default_max_redirects", skip_serializing_if = "is_default_max_redirects")]
    pub max_redirects: u32,
    /// How long the whole request may take, redirects and reading the answer
    /// included ([`DEFAULT_TIMEOUT`] when absent). Written as text, `"30s"`.
    /// The job's own `timeout` option applies on top.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub timeout: Option<SignedDuration>,
}

impl Default for HttpSpec {
    fn default() -> HttpSpec {
        HttpSpec {
            url: String::new(),
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            ca_cert: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            timeout: None,
        }
    }
}

impl HttpSpec {
    /// A `GET` of `url` with every default.
    pub fn get(url: impl Into<String>) -> HttpSpec {
        HttpSpec { url: url.into(), ..HttpSpec::default() }
    }
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_max_redirects() -> u32 {
    DEFAULT_MAX_REDIRECTS
}

fn is_default_max_redirects(n: &u32) -> bool {
    *n == DEFAULT_MAX_REDIRECTS
}

/// `Option<SignedDuration>` as `"30s"`.
mod opt_duration {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&chime_core::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SignedDuration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => chime_core::parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Checks an `http` job's arguments as the task will at run time: the URL
/// ([`validate_url`]), the method (a token), the header names (tokens, none
/// of the client's own) and values (no control characters but tab), the
/// body size, `max_redirects` and `timeout` within bounds.
///
/// Call it where jobs come in (a config file, an API) so a job that could
/// never run is refused when it is created, not at its first run. Files
/// (`ca_cert`) are only read at run time.
///
/// ```
/// use chime_tasks::{HttpSpec, validate};
///
/// let mut spec = HttpSpec::get("http://127.0.0.1:6379/ HTTP/1.0\r\n\r\nFLUSHALL");
/// assert_eq!(
///     validate(&spec).unwrap_err(),
///     "url: holds a space at byte 22; a URL must not contain whitespace or control characters (percent-encode them)"
/// );
/// spec.url = "http://127.0.0.1:8080/hook".into();
/// spec.headers.insert("X-Note".into(), "a\r\nSet-Cookie: x".into());
/// assert_eq!(validate(&spec).unwrap_err(), "header \"X-Note\": the value holds a carriage return at byte 1");
/// ```
///
/// # Errors
///
/// What is wrong, naming the field; never a header's value.
pub fn validate(spec: &HttpSpec) -> Result<(), String> {
    parse_url(&spec.url).map_err(|e| format!("url: {e}"))?;
    parse_method(&spec.method)?;
    request_headers(&spec.headers)?;
    if let Some(body) = &spec.body
        && body.len() > MAX_REQUEST_BODY
    {
        return Err(format!("body: {} bytes, more than the {MAX_REQUEST_BODY} a job may send", body.len()));
    }
    if spec.max_redirects > MAX_REDIRECTS_LIMIT {
        return Err(format!("max_redirects: {} is more than {MAX_REDIRECTS_LIMIT}", spec.max_redirects));
    }
    if let Some(t) = spec.timeout {
        let max = SignedDuration::try_from(MAX_TIMEOUT).expect("fits");
        if !t.is_positive() || t > max {
            return Err(format!(
                "timeout: {} is out of range: give a positive duration up to {}",
                chime_core::format_duration(t),
                chime_core::format_duration(max)
            ));
        }
    }
    if spec.ca_cert.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err("ca_cert: empty; give the path of a PEM file or leave it out".into());
    }
    Ok(())
}

/// Checks a URL as the `http` task takes it: `http://` or `https://` with a
/// host, no user name or password in it (send an `Authorization` header),
/// and no whitespace, control or invisible formatting characters anywhere
/// (a URL that needs them percent-encodes them).
///
/// ```
/// use chime_tasks::validate_url;
///
/// assert!(validate_url("https://example.com/hook?x=%20y").is_ok());
/// assert_eq!(validate_url("file:///etc/passwd").unwrap_err(), "\"file\" URLs are not allowed: give an http:// or https:// URL");
/// assert!(validate_url("http://example.com/a\nb").unwrap_err().contains("line feed"));
/// ```
///
/// # Errors
///
/// What is wrong; the URL itself is not quoted (it may hold a secret).
pub fn validate_url(url: &str) -> Result<(), String> {
    parse_url(url).map(drop)
}

/// [`validate_url`], giving the parsed URL (without its fragment).
pub(crate) fn parse_url(text: &str) -> Result<Url, String> {
    if text.is_empty() {
        return Err("empty; give an http:// or https:// URL".into());
    }
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| forbidden_in_url(c)) {
        return Err(format!(
            "holds {} at byte {at}; a URL must not contain whitespace or control characters (percent-encode them)",
            char_name(c)
        ));
    }
    let mut url = Url::parse(text).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => "not an absolute URL: give an http:// or https:// URL".to_owned(),
        e => format!("not a valid URL: {e}"),
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("{other:?} URLs are not allowed: give an http:// or https:// URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL holds a user name or password: send credentials in an Authorization header".into());
    }
    if url.port() == Some(0) {
        return Err("port 0 is not a port to connect to".into());
    }
    url.set_fragment(None);
    Ok(url)
}

/// Whitespace, control characters, and the invisible ones that make a URL
/// read differently from what it is (bidi controls, zero-width spaces).
fn forbidden_in_url(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn char_name(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        '\r' => "a carriage return".into(),
        '\n' => "a line feed".into(),
        '\0' => "a NUL byte".into(),
        c => format!("the character U+{:04X}", u32::from(c)),
    }
}

/// RFC 9110 `tchar`: what a method or a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_method(method: &str) -> Result<Method, String> {
    let upper = method.to_ascii_uppercase();
    if upper.is_empty() || !upper.bytes().all(is_tchar) {
        return Err(format!("method {method:?}: not a method name (letters, digits and !#$%&'*+-.^_`|~ only)"));
    }
    if upper == "CONNECT" {
        return Err("method \"CONNECT\": tunnels are not requests the http task sends".into());
    }
    Method::from_bytes(upper.as_bytes()).map_err(|e| format!("method {method:?}: {e}"))
}

/// The job's headers, checked; errors name the header, never its value.
fn request_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!(
                "header {name:?}: not a header name (letters, digits and !#$%&'*+-.^_`|~ only, no spaces or colons)"
            ));
        }
        if MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("header {name:?}: set by the client from the url and body, not by a job"));
        }
        if let Some((at, c)) = value.char_indices().find(|&(_, c)| c.is_control() && c != '\t') {
            return Err(format!("header {name:?}: the value holds {} at byte {at}", char_name(c)));
        }
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("header {name:?}: the value must be visible ASCII, spaces and tabs"))?;
        map.append(n, v);
    }
    Ok(map)
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// The URL as a run shows it: secret-looking query values redacted.
fn shown(url: &Url) -> String {
    if url.query().is_none() || !url.query_pairs().any(|(k, _)| is_secret_name(&k)) {
        return url.to_string();
    }
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if is_secret_name(&k) { REDACTED.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

/// Values that must not appear in what a run keeps: those of secret-looking
/// headers and query parameters (a server may echo a request back).
fn secrets_of(headers: &BTreeMap<String, String>, url: &Url) -> Vec<String> {
    let mut secrets: Vec<String> = headers.iter().filter(|(k, _)| is_secret_name(k)).map(|(_, v)| v.clone()).collect();
    // `Bearer abc`: the credential alone too, in case only it is echoed.
    let parts: Vec<String> =
        secrets.iter().filter_map(|v| v.split_once(' ').map(|(_, cred)| cred.trim().to_owned())).collect();
    secrets.extend(parts);
    secrets.extend(url.query_pairs().filter(|(k, _)| is_secret_name(k)).map(|(_, v)| v.into_owned()));
    secrets.retain(|s| s.len() >= 4);
    // Longest first, so a value is replaced whole before a part of it.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), REDACTED);
        }
    }
    text
}

/// The http task: see [`HttpSpec`].
pub(crate) async fn run_http(ctx: JobContext, options: Arc<Options>) -> Result<(), TaskError> {
    let mut spec: HttpSpec = ctx.args()?;
    // An on_alert hook with no body of its own sends the alert as JSON.
    if let (None, Some(alert)) = (&spec.body, &ctx.alert) {
        spec.body = Some(serde_json::json!({ "alert": **alert }).to_string());
        if !spec.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            spec.headers.insert("Content-Type".to_owned(), "application/json".to_owned());
        }
    }
    validate(&spec)?;
    let url = parse_url(&spec.url)?;
    let secrets = secrets_of(&spec.headers, &url);
    let total = spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.unsigned_abs());
    let shown_url = shown(&url);
    let run = exchange(&spec, url, &options, &secrets);
    let result = match tokio::time::timeout(total, run).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{shown_url} did not answer within {} (the http task's timeout)",
            chime_core::format_duration(SignedDuration::try_from(total).unwrap_or(SignedDuration::MAX))
        )),
    };
    match result {
        Ok(output) => {
            tracing::debug!(job_id = %ctx.job_id, run_id = %ctx.run_id, output = %output, "http request succeeded");
            ctx.set_output(output);
            Ok(())
        }
        Err(e) => Err(scrub(&e, &secrets).into()),
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client(ca_cert: Option<&str>, connect_timeout: Duration) -> Result<HttpsClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        use rustls::pki_types::pem::PemObject as _;
        let mut added = 0;
        for cert in
            rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| format!("ca_cert {path:?}: {e}"))?
        {
            let cert = cert.map_err(|e| format!("ca_cert {path:?}: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca_cert {path:?}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("ca_cert {path:?}: no certificate in the file"));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .retry_canceled_requests(false)
        .http1_title_case_headers(true)
        .build(connector))
}

/// Sends the request, follows its redirects, reads the answer: the run's
/// output on 2xx, the error otherwise.
async fn exchange(spec: &HttpSpec, mut url: Url, options: &Options, secrets: &[String]) -> Result<String, String> {
    let client = client(spec.ca_cert.as_deref(), options.connect_timeout)?;
    let mut method = parse_method(&spec.method)?;
    let mut headers = request_headers(&spec.headers)?;
    headers.entry(header::USER_AGENT).or_insert(HeaderValue::from_static("chime"));
    let mut body = Bytes::from(spec.body.clone().unwrap_or_default());
    let mut redirects = 0;
    loop {
        if let Some(policy) = &options.allowed_targets {
            policy.check(&url)?;
        }
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .body(Full::new(body.clone()))
            .map_err(|e| format!("{}: {e}", shown(&url)))?;
        *request.headers_mut() = headers.clone();
        let response = client.request(request).await.map_err(|e| describe(&e, &url, options.connect_timeout))?;
        let status = response.status();
        let location = response.headers().get(header::LOCATION).cloned();
        if status.is_redirection()
            && let Some(location) = location
            && spec.max_redirects > 0
            && status != StatusCode::NOT_MODIFIED
        {
            let from = shown(&url);
            if redirects == spec.max_redirects {
                return Err(format!(
                    "{from} answered {} after {redirects} redirects, the most the job follows (max_redirects)",
                    status_line(&response)
                ));
            }
            redirects += 1;
            let next = redirect_target(&url, &location).map_err(|e| format!("{from} answered {status}: {e}"))?;
            if url.scheme() == "https" && next.scheme() == "http" {
                return Err(format!(
                    "{from} answered {status} to {}: a redirect from https to http is never followed",
                    shown(&next)
                ));
            }
            if next.origin() != url.origin() {
                // Credentials go only where the job said.
                let names: Vec<HeaderName> = headers
                    .keys()
                    .filter(|n| *n == header::AUTHORIZATION || *n == header::COOKIE || is_secret_name(n.as_str()))
                    .cloned()
                    .collect();
                for n in names {
                    headers.remove(n);
                }
            }
            let to_get = status == StatusCode::SEE_OTHER && method != Method::HEAD
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && method == Method::POST;
            if to_get {
                method = Method::GET;
                body = Bytes::new();
                headers.remove(header::CONTENT_TYPE);
            }
            url = next;
            continue;
        }
        let line = status_line(&response);
        let (data, cut) = read_limited(response.into_body(), MAX_RESPONSE_BODY)
            .await
            .map_err(|e| format!("reading the answer of {}: {e}", shown(&url)))?;
        let text = String::from_utf8_lossy(&data);
        let mut snippet: String = text.trim().chars().take(OUTPUT_TAIL).collect();
        if cut {
            snippet.push_str(&format!(" (the answer was cut at {} KiB)", MAX_RESPONSE_BODY / 1024));
        }
        let snippet = scrub(&snippet, secrets);
        return if status.is_success() {
            Ok(if snippet.is_empty() { line } else { format!("{line}; body: {snippet}") })
        } else {
            Err(format!("{} answered {line}; body: {snippet}", shown(&url)))
        };
    }
}

/// `HTTP/1.1 503 Service Unavailable`, with the server's own reason phrase.
fn status_line<B>(response: &http::Response<B>) -> String {
    let status = response.status();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).chars().filter(|c| !c.is_control()).collect::<String>())
        .or_else(|| status.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    format!("{:?} {} {reason}", response.version(), status.as_u16()).trim_end().to_owned()
}

/// Where a redirect leads, checked as a job's own URL is.
fn redirect_target(from: &Url, location: &HeaderValue) -> Result<Url, String> {
    let location =
        location.to_str().map_err(|_| "its Location is not visible ASCII; the redirect is not followed".to_owned())?;
    if location.chars().any(forbidden_in_url) {
        return Err("its Location holds whitespace or control characters; the redirect is not followed".into());
    }
    let next = from.join(location).map_err(|e| format!("its Location is not a URL ({e})"))?;
    parse_url(next.as_str()).map_err(|e| format!("the redirect is not followed: {e}"))
}

/// At most `limit` bytes of the body; `true` when there was more.
async fn read_limited(mut body: hyper::body::Incoming, limit: usize) -> Result<(Vec<u8>, bool), hyper::Error> {
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame?.into_data() {
            let room = limit - data.len();
            if chunk.len() > room {
                data.extend_from_slice(&chunk[..room]);
                return Ok((data, true));
            }
            data.extend_from_slice(&chunk);
        }
    }
    Ok((data, false))
}

/// A client error as a run shows it: `cannot connect to host:port: why`,
/// `TLS with host:port: why`, or the chain of causes.
fn describe(err: &hyper_util::client::legacy::Error, url: &Url, connect_timeout: Duration) -> String {
    let target = match (url.host(), url.port_or_known_default()) {
        (Some(url::Host::Ipv6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(h), Some(p)) => format!("{h}:{p}"),
        _ => shown(url),
    };
    let mut causes = Vec::new();
    let mut tls = None;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = tls_error(e) {
            tls = Some(t.to_string());
        }
        let text = e.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        cur = e.source();
    }
    if let Some(tls) = tls {
        return format!("TLS with {target}: {tls}");
    }
    if err.is_connect() {
        let why = causes.last().cloned().unwrap_or_default();
        let why = if why.contains("timed out") || why.contains("deadline") {
            format!("no connection within {:?}", connect_timeout)
        } else {
            why
        };
        return format!("cannot connect to {target}: {why}");
    }
    format!("request to {} failed: {}", shown(url), causes.join(": "))
}

/// The rustls error in `e`, also when wrapped in `io::Error`s (as
/// tokio-rustls and hyper-rustls do).
fn tls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

impl TargetPolicy {
    /// Checks an `http` job's URL against the policy, after [`validate`]
    /// (convenient where jobs come in over an API).
    ///
    /// # Errors
    ///
    /// Why the job is refused.
    pub fn check_spec(&self, spec: &HttpSpec) -> Result<(), String> {
        validate(spec)?;
        self.check_url(&spec.url).map_err(|e| format!("url: {e}"))
    }
}

#[cfg(test)]
mod tests;
