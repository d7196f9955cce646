//! The http task against servers on 127.0.0.1: raw TCP ones that record every
//! byte they receive, and a TLS one with a fresh self-signed certificate.

use std::sync::Mutex;

use chime_core::JobId;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn ctx(args: serde_json::Value) -> JobContext {
    JobContext::new(JobId::new("ping").unwrap(), args)
}

async fn run(args: serde_json::Value) -> Result<String, String> {
    run_with(args, Options::default()).await
}

async fn run_with(args: serde_json::Value, options: Options) -> Result<String, String> {
    let c = ctx(args);
    match run_http(c.clone(), Arc::new(options)).await {
        Ok(()) => Ok(c.output().unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

/// A raw HTTP/1.1 server on 127.0.0.1: each connection's request is read
/// (headers, then `Content-Length` bytes) and answered with what `respond`
/// makes of it; every byte received is kept, one entry per connection.
struct RawServer {
    port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawServer {
    async fn start(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> RawServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let kept = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let (kept, respond) = (Arc::clone(&kept), Arc::clone(&respond));
                tokio::spawn(async move {
                    let request = read_request(&mut socket).await;
                    kept.lock().unwrap().push(request.clone());
                    let answer = respond(&String::from_utf8_lossy(&request));
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        RawServer { port, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.received.lock().unwrap().iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect()
    }

    fn bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().concat()
    }
}

async fn read_request<S: tokio::io::AsyncRead + Unpin>(socket: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn answer(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

#[tokio::test]
async fn a_2xx_answer_is_success_and_the_request_is_what_the_job_says() {
    let server = RawServer::start(|_| answer("204 No Content", "", "")).await;
    let args = json!({"url": server.url("/hook?x=1"), "method": "post", "headers": {"X-Token": "t"}, "body": "{}"});
    assert_eq!(run(args).await.unwrap(), "HTTP/1.1 204 No Content");
    let request = &server.requests()[0];
    assert!(request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("X-Token: t\r\n"), "{request}");
    assert!(request.contains("Content-Length: 2\r\n") && request.ends_with("\r\n\r\n{}"), "{request}");
    assert!(request.contains(&format!("Host: 127.0.0.1:{}\r\n", server.port)), "{request}");
    assert!(request.contains("User-Agent: chime\r\n"), "{request}");
}

#[tokio::test]
async fn an_alert_hook_without_a_body_posts_the_alert_as_json() {
    let server = RawServer::start(|_| answer("204 No Content", "", "")).await;
    let notice = chime_core::AlertNotice {
        job_id: JobId::new("backup").unwrap(),
        reason: "no success for 1d 2h \"quoted\"\r\nInjected: 1".into(),
        last_error: None,
        since: "2026-01-01T03:00:00Z".parse().unwrap(),
    };
    let hook = ctx(json!({"url": server.url("/hook"), "method": "POST"})).with_alert(notice.clone());
    run_http(hook, Arc::new(Options::default())).await.unwrap();
    let request = &server.requests()[0];
    assert!(request.contains("Content-Type: application/json\r\n"), "{request}");
    assert!(!request.contains("\r\nInjected: 1"), "the reason stays inside the JSON body: {request}");
    let body: serde_json::Value = serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body, json!({"alert": notice}));
    // A hook with a body of its own sends that body.
    let own = ctx(json!({"url": server.url("/own"), "method": "POST", "body": "text"})).with_alert(notice);
    run_http(own, Arc::new(Options::default())).await.unwrap();
    assert!(server.requests()[1].ends_with("\r\n\r\ntext"), "{}", server.requests()[1]);
}

#[tokio::test]
async fn a_2xx_body_is_the_run_output() {
    let server = RawServer::start(|_| answer("200 OK", "", "  all good\n")).await;
    assert_eq!(run(json!({"url": server.url("/")})).await.unwrap(), "HTTP/1.1 200 OK; body: all good");
}

#[tokio::test]
async fn other_answers_fail_with_the_status_line_and_body() {
    let server = RawServer::start(|_| answer("503 Service Unavailable", "", "pong")).await;
    let err = run(json!({"url": server.url("/")})).await.unwrap_err();
    assert_eq!(err, format!("{} answered HTTP/1.1 503 Service Unavailable; body: pong", server.url("/")));
    // The server's own reason phrase is kept.
    let server = RawServer::start(|_| answer("418 Short And Stout", "", "")).await;
    let err = run(json!({"url": server.url("/tea")})).await.unwrap_err();
    assert_eq!(err, format!("{} answered HTTP/1.1 418 Short And Stout; body: ", server.url("/tea")));
}

/// Every way a job could smuggle bytes into the request: refused by
/// `validate` and by the task before connecting, so the raw server sees
/// nothing at all.
#[tokio::test]
async fn no_job_can_put_raw_bytes_on_the_wire() {
    let server = RawServer::start(|_| answer("200 OK", "", "")).await;
    let base = server.url("/");
    let attacks = [
        (json!({"url": format!("{base} HTTP/1.0\r\n\r\nFLUSHALL")}), "url: holds a space at byte"),
        (json!({"url": format!("{base}\r\n\r\nFLUSHALL")}), "url: holds a carriage return"),
        (json!({"url": format!("{base}\nFLUSHALL")}), "url: holds a line feed"),
        (json!({"url": format!("{base}\tx")}), "url: holds a tab"),
        (json!({"url": format!("{base}\u{0}x")}), "url: holds a NUL byte"),
        (json!({"url": format!("{base}\u{202E}x")}), "url: holds the character U+202E"),
        (
            json!({"url": base, "headers": {"X-A": "1\r\n\r\nFLUSHALL"}}),
            "header \"X-A\": the value holds a carriage return",
        ),
        (json!({"url": base, "headers": {"X-A": "1\nFLUSHALL"}}), "header \"X-A\": the value holds a line feed"),
        (json!({"url": base, "headers": {"X-A": "1\u{0}"}}), "header \"X-A\": the value holds a NUL byte"),
        (json!({"url": base, "headers": {"X-A: 1\r\n\r\nFLUSHALL\r\nX-B": "2"}}), "not a header name"),
        (json!({"url": base, "headers": {"X A": "2"}}), "not a header name"),
        (json!({"url": base, "headers": {"Content-Length": "0"}}), "set by the client"),
        (json!({"url": base, "headers": {"transfer-encoding": "chunked"}}), "set by the client"),
        (json!({"url": base, "headers": {"Host": "evil"}}), "set by the client"),
        (json!({"url": base, "method": "GET / HTTP/1.0\r\n\r\nFLUSHALL"}), "not a method name"),
        (json!({"url": base, "method": "GET /"}), "not a method name"),
        (json!({"url": base, "method": ""}), "not a method name"),
        (json!({"url": base, "method": "connect"}), "tunnels"),
    ];
    for (args, why) in attacks {
        let spec: HttpSpec = serde_json::from_value(args.clone()).unwrap();
        let refused = validate(&spec).unwrap_err();
        assert!(refused.contains(why), "{args}: {refused}");
        assert!(!refused.contains(['\r', '\n', '\0']), "the error is one line of text: {refused:?}");
        let err = run(args.clone()).await.unwrap_err();
        assert_eq!(err, refused, "{args}");
    }
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // Percent-encoded, the same text is sent as the harmless path it is.
    run(json!({"url": format!("{base}%0D%0A%0D%0AFLUSHALL"), "headers": {"X-A": "a b\tc"}})).await.unwrap();
    let bytes = server.bytes();
    let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!find(b"\r\n\r\nFLUSHALL") && !find(b"\nFLUSHALL"));
    assert!(find(b"GET /%0D%0A%0D%0AFLUSHALL HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&bytes));
    assert!(find(b"X-A: a b\tc\r\n"));
}

#[tokio::test]
async fn only_http_and_https_urls_are_taken_at_creation_and_at_run_time() {
    let cases = [
        ("file:///etc/passwd", "\"file\" URLs are not allowed: give an http:// or https:// URL"),
        ("ftp://127.0.0.1/x", "\"ftp\" URLs are not allowed: give an http:// or https:// URL"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "\"gopher\" URLs are not allowed: give an http:// or https:// URL"),
        ("localhost:8080/x", "\"localhost\" URLs are not allowed: give an http:// or https:// URL"),
        ("127.0.0.1:8080/x", "not an absolute URL: give an http:// or https:// URL"),
        ("/relative", "not an absolute URL: give an http:// or https:// URL"),
        ("", "empty; give an http:// or https:// URL"),
        ("http://", "not a valid URL: empty host"),
        ("http://127.0.0.1:99999/", "not a valid URL: invalid port number"),
        ("http://127.0.0.1:0/", "port 0 is not a port to connect to"),
        (
            "http://u:hunter2@127.0.0.1/",
            "the URL holds a user name or password: send credentials in an Authorization header",
        ),
        (
            " http://127.0.0.1/",
            "holds a space at byte 0; a URL must not contain whitespace or control characters (percent-encode them)",
        ),
        (
            "http://127.0.0.1/\u{7f}",
            "holds the character U+007F at byte 17; a URL must not contain whitespace or control characters (percent-encode them)",
        ),
    ];
    for (url, why) in cases {
        assert_eq!(validate_url(url).unwrap_err(), why, "{url:?}");
        assert_eq!(validate(&HttpSpec::get(url)).unwrap_err(), format!("url: {why}"), "{url:?}");
        assert_eq!(run(json!({ "url": url })).await.unwrap_err(), format!("url: {why}"), "{url:?}");
    }
    for url in
        ["http://example.com", "https://example.com:8443/a/b?c=d#frag", "http://[::1]:8080/", "HTTP://Example.COM/"]
    {
        validate_url(url).unwrap();
    }
}

#[test]
fn the_other_fields_are_validated_too() {
    let spec = |f: &dyn Fn(&mut HttpSpec)| {
        let mut s = HttpSpec::get("http://127.0.0.1/");
        f(&mut s);
        validate(&s)
    };
    assert!(spec(&|_| {}).is_ok());
    assert_eq!(spec(&|s| s.max_redirects = 21).unwrap_err(), "max_redirects: 21 is more than 20");
    assert!(spec(&|s| s.max_redirects = 20).is_ok());
    assert_eq!(
        spec(&|s| s.timeout = Some(SignedDuration::from_hours(25))).unwrap_err(),
        "timeout: 25h is out of range: give a positive duration up to 24h"
    );
    assert!(spec(&|s| s.body = Some("x".repeat(MAX_REQUEST_BODY + 1))).unwrap_err().starts_with("body: 1048577 bytes"));
    assert!(spec(&|s| s.ca_cert = Some(" ".into())).unwrap_err().starts_with("ca_cert: empty"));
    assert!(spec(&|s| s.method = "patch".into()).is_ok());
}

#[test]
fn stored_jobs_decode_and_new_ones_keep_the_old_shape() {
    let old = json!({"url": "http://h/", "method": "POST", "headers": {"A": "b"}, "body": "x", "ca_cert": "/ca.pem"});
    let spec: HttpSpec = serde_json::from_value(old.clone()).unwrap();
    assert_eq!(spec.max_redirects, DEFAULT_MAX_REDIRECTS);
    assert_eq!(spec.timeout, None);
    assert_eq!(serde_json::to_value(&spec).unwrap(), old);
    let minimal: HttpSpec = serde_json::from_value(json!({"url": "http://h/"})).unwrap();
    assert_eq!(minimal, HttpSpec::get("http://h/"));
    assert_eq!(serde_json::to_value(&minimal).unwrap(), json!({"url": "http://h/", "method": "GET"}));
    let new: HttpSpec =
        serde_json::from_value(json!({"url": "http://h/", "max_redirects": 0, "timeout": "1m 30s"})).unwrap();
    assert_eq!((new.max_redirects, new.timeout), (0, Some(SignedDuration::from_secs(90))));
    assert_eq!(serde_json::to_value(&new).unwrap()["timeout"], "1m 30s");
    assert!(serde_json::from_value::<HttpSpec>(json!({"url": "http://h/", "timeout": "soon"})).is_err());
    assert!(serde_json::from_value::<HttpSpec>(json!({"url": "http://h/", "redirects": 1})).is_err());
}

/// A server whose `/r/N` redirects to `/r/N-1` with `status`, and `/r/0` answers 200.
async fn redirecting(status: &'static str) -> RawServer {
    RawServer::start(move |req| {
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
        match path.strip_prefix("/r/").and_then(|n| n.parse::<u32>().ok()) {
            Some(0) => answer("200 OK", "", "arrived"),
            Some(n) => answer(status, &format!("Location: /r/{}\r\n", n - 1), ""),
            None => answer("404 Not Found", "", ""),
        }
    })
    .await
}

#[tokio::test]
async fn redirects_are_followed_up_to_max_redirects() {
    let server = redirecting("302 Found").await;
    assert_eq!(run(json!({"url": server.url("/r/5")})).await.unwrap(), "HTTP/1.1 200 OK; body: arrived");
    assert_eq!(server.requests().len(), 6);

    let err = run(json!({"url": server.url("/r/6")})).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "{} answered HTTP/1.1 302 Found after 5 redirects, the most the job follows (max_redirects)",
            server.url("/r/1")
        )
    );
    assert_eq!(server.requests().len(), 6 + 6);

    // With none allowed, a redirect is an answer like any other non-2xx.
    let err = run(json!({"url": server.url("/r/1"), "max_redirects": 0})).await.unwrap_err();
    assert_eq!(err, format!("{} answered HTTP/1.1 302 Found; body: ", server.url("/r/1")));
    assert_eq!(
        run(json!({"url": server.url("/r/2"), "max_redirects": 2})).await.unwrap(),
        "HTTP/1.1 200 OK; body: arrived"
    );
}

#[tokio::test]
async fn a_redirect_keeps_or_drops_the_method_and_body_as_browsers_do() {
    let server = redirecting("303 See Other").await;
    run(
        json!({"url": server.url("/r/1"), "method": "POST", "body": "data", "headers": {"Content-Type": "text/plain"}}),
    )
    .await
    .unwrap();
    let r = server.requests();
    assert!(r[0].starts_with("POST /r/1 ") && r[0].ends_with("data") && r[0].contains("Content-Type: text/plain"));
    assert!(r[1].starts_with("GET /r/0 ") && !r[1].contains("data") && !r[1].contains("Content-Type"), "{}", r[1]);

    let server = redirecting("307 Temporary Redirect").await;
    run(json!({"url": server.url("/r/1"), "method": "PUT", "body": "data"})).await.unwrap();
    let r = server.requests();
    assert!(r[1].starts_with("PUT /r/0 ") && r[1].ends_with("\r\n\r\ndata"), "{}", r[1]);
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let target = RawServer::start(|_| answer("200 OK", "", "")).await;
    let next = target.url("/landing");
    let origin = RawServer::start(move |_| answer("302 Found", &format!("Location: {next}\r\n"), "")).await;
    let headers = json!({"Authorization": "Bearer s3cr3t-token", "X-Api-Key": "k3y-value", "Accept": "text/plain"});
    run(json!({"url": origin.url("/"), "headers": headers})).await.unwrap();
    let first = &origin.requests()[0];
    assert!(first.contains("Authorization: Bearer s3cr3t-token") && first.contains("X-Api-Key: k3y-value"));
    let second = &target.requests()[0];
    assert!(second.starts_with("GET /landing "), "{second}");
    assert!(!second.contains("s3cr3t") && !second.contains("k3y-value"), "{second}");
    assert!(second.contains("Accept: text/plain"), "{second}");
}

#[tokio::test]
async fn a_redirect_to_another_scheme_or_a_bad_location_is_not_followed() {
    let to_file = RawServer::start(|_| answer("301 Moved Permanently", "Location: file:///etc/passwd\r\n", "")).await;
    let err = run(json!({"url": to_file.url("/")})).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "{} answered 301 Moved Permanently: the redirect is not followed: \"file\" URLs are not allowed: give an http:// or https:// URL",
            to_file.url("/")
        )
    );
    let to_gopher =
        RawServer::start(|_| answer("302 Found", "Location: gopher://127.0.0.1:6379/_FLUSHALL\r\n", "")).await;
    assert!(run(json!({"url": to_gopher.url("/")})).await.unwrap_err().contains("\"gopher\" URLs are not allowed"));
}

#[tokio::test]
async fn secrets_are_never_echoed_into_the_run_output_or_error() {
    // A server that echoes the whole request back, as some error pages do.
    let echo = RawServer::start(|req| answer("401 Unauthorized", "", req)).await;
    let args = json!({
        "url": echo.url("/hook?page=2&api_key=qu3ry-s3cret"),
        "headers": {"Authorization": "Bearer s3cr3t-token", "Cookie": "session=c00kie-value", "X-Trace": "visible"},
    });
    let err = run(args).await.unwrap_err();
    for secret in ["s3cr3t-token", "c00kie-value", "qu3ry-s3cret"] {
        assert!(!err.contains(secret), "{secret} in {err}");
    }
    assert!(err.contains("Authorization: <redacted>") && err.contains("X-Trace: visible"), "{err}");
    assert!(
        err.starts_with(&echo.url("/hook?page=2&api_key=%3Credacted%3E answered HTTP/1.1 401 Unauthorized")),
        "{err}"
    );

    let echo_ok = RawServer::start(|req| answer("200 OK", "", req)).await;
    let out = run(json!({"url": echo_ok.url("/"), "headers": {"X-Auth-Token": "t0ken-value"}})).await.unwrap();
    assert!(!out.contains("t0ken-value") && out.contains("X-Auth-Token: <redacted>"), "{out}");
}

#[tokio::test]
async fn at_most_1_mib_of_an_answer_is_read() {
    // An answer that never ends.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        read_request(&mut socket).await;
        socket.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
        while socket.write_all(chunk.as_bytes()).await.is_ok() {
            counter.fetch_add(64 * 1024, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let out = run(json!({"url": format!("http://127.0.0.1:{port}/big"), "timeout": "20s"})).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK; body: yyyy"), "{}", &out[..40]);
    assert!(out.ends_with("y (the answer was cut at 1024 KiB)"), "{}", &out[out.len() - 60..]);
    assert_eq!(out.len(), "HTTP/1.1 200 OK; body: ".len() + OUTPUT_TAIL + " (the answer was cut at 1024 KiB)".len());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // What the server managed to write: 1 MiB plus what the socket buffers hold.
    assert!(sent.load(std::sync::atomic::Ordering::Relaxed) < 32 << 20);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let started = std::time::Instant::now();
    let err = run(json!({"url": format!("http://127.0.0.1:{port}/slow?token=abcdef"), "timeout": "500ms"}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "http://127.0.0.1:{port}/slow?token=%3Credacted%3E did not answer within 500ms (the http task's timeout)"
        )
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connecting_times_out() {
    // A listener that never accepts, its queue filled: further SYNs go unanswered.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    let options = Options::default().connect_timeout(Duration::from_millis(300));
    let err = run_with(json!({"url": format!("http://{addr}/"), "timeout": "10s"}), options).await.unwrap_err();
    assert_eq!(err, format!("cannot connect to {addr}: no connection within 300ms"));
    drop((held, listener));
}

#[tokio::test]
async fn a_closed_port_fails_clearly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = run(json!({"url": format!("http://127.0.0.1:{port}/")})).await.unwrap_err();
    assert!(err.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[tokio::test]
async fn a_target_policy_is_checked_before_connecting_and_on_every_redirect() {
    let allowed = redirecting("302 Found").await;
    let other = RawServer::start(|_| answer("200 OK", "", "")).await;
    let to_other = other.url("/");
    let bouncer = RawServer::start(move |_| answer("302 Found", &format!("Location: {to_other}\r\n"), "")).await;
    let policy =
        TargetPolicy::new([format!("127.0.0.1:{}", allowed.port), format!("127.0.0.1:{}", bouncer.port)]).unwrap();
    let options = || Options::default().allowed_targets(policy.clone());

    run_with(json!({"url": allowed.url("/r/2")}), options()).await.unwrap();
    let err = run_with(json!({"url": other.url("/")}), options()).await.unwrap_err();
    assert_eq!(err, format!("127.0.0.1:{} is not an allowed target (allowed: {policy})", other.port));
    let err = run_with(json!({"url": bouncer.url("/")}), options()).await.unwrap_err();
    assert!(err.starts_with(&format!("127.0.0.1:{} is not an allowed target", other.port)), "{err}");
    assert!(other.requests().is_empty());
    assert_eq!(bouncer.requests().len(), 1);
    // The web API's check when a job comes in.
    assert!(policy.check_spec(&HttpSpec::get(allowed.url("/"))).is_ok());
    assert!(policy.check_spec(&HttpSpec::get(other.url("/"))).unwrap_err().starts_with("url: 127.0.0.1:"));
}

/// An https server for 127.0.0.1 with a fresh self-signed certificate,
/// answering every connection with `respond`; returns its port and the
/// certificate's PEM.
async fn tls_server(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> (u16, String) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_pem = key.cert.pem();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let (acceptor, respond) = (acceptor.clone(), Arc::clone(&respond));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let request = read_request(&mut tls).await;
                let _ = tls.write_all(respond(&String::from_utf8_lossy(&request)).as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, cert_pem)
}

#[tokio::test]
async fn https_works_with_a_trusted_certificate_and_refuses_an_untrusted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (port, pem) = tls_server(|_| answer("200 OK", "", "")).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let args = json!({"url": format!("https://127.0.0.1:{port}/health"), "ca_cert": ca.to_str().unwrap()});
    assert_eq!(run(args).await.unwrap(), "HTTP/1.1 200 OK");

    let err = run(json!({"url": format!("https://127.0.0.1:{port}/")})).await.unwrap_err();
    assert!(err.starts_with(&format!("TLS with 127.0.0.1:{port}: ")), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = run(json!({"url": format!("https://127.0.0.1:{port}/"), "ca_cert": empty.to_str().unwrap()}))
        .await
        .unwrap_err();
    assert!(err.ends_with("no certificate in the file"), "{err}");
}

#[tokio::test]
async fn a_redirect_from_https_to_http_is_never_followed() {
    let plain = RawServer::start(|_| answer("200 OK", "", "")).await;
    let to = plain.url("/downgraded");
    let (port, pem) = tls_server(move |_| answer("302 Found", &format!("Location: {to}\r\n"), "")).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let args = json!({"url": format!("https://127.0.0.1:{port}/"), "ca_cert": ca.to_str().unwrap()});
    let err = run(args).await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "https://127.0.0.1:{port}/ answered 302 Found to {}: a redirect from https to http is never followed",
            plain.url("/downgraded")
        )
    );
    assert!(plain.requests().is_empty());
}
