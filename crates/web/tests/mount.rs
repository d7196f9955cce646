//! `api_router` and `dashboard_router` in an app of their own: nested under
//! a prefix and merged beside the app's `/` and fallback, with the pages'
//! links followed the way a browser resolves them; job ids that need
//! percent-encoding, through the dashboard's links and the API.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Redirect;
use axum::routing::get;
use chime_core::{ConflictPolicy, Job, JobContext, Scheduler, TaskRegistry, Trigger};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const TOKEN: &str = "0123456789abcdef-test-token";

async fn scheduler(ids: &[&str]) -> Scheduler {
    let mut tasks = TaskRegistry::new();
    tasks.register("noop", |_ctx: JobContext| async { Ok::<_, std::io::Error>(()) });
    let s = Scheduler::builder().tasks(tasks).timezone("UTC").unwrap().node_id("mount-test").build();
    for id in ids {
        s.add_job(Job::new(id, "noop", Trigger::cron("0 9 * * *").unwrap()).unwrap(), ConflictPolicy::Error)
            .await
            .unwrap();
    }
    s
}

/// Your app: its own `/`, its own fallback, and chime under `/scheduler/`.
fn app(handle: chime_web::Handle) -> Router {
    let chime = chime_web::api_router(handle.clone()).merge(chime_web::dashboard_router(handle));
    Router::new()
        .route("/", get(|| async { "my home page" }))
        .route("/scheduler", get(|| async { Redirect::permanent("/scheduler/") }))
        .nest("/scheduler/", chime)
        .fallback(|| async { (StatusCode::NOT_FOUND, "my own 404") })
}

/// What the dashboard's `fetch()` sends: same origin, JSON.
const SAME_ORIGIN: [(&str, &str); 4] = [
    ("host", "127.0.0.1:3000"),
    ("origin", "http://127.0.0.1:3000"),
    ("sec-fetch-site", "same-origin"),
    ("content-type", "application/json"),
];

async fn send(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get_page(app: &Router, uri: &str) -> String {
    let (st, page) = send(app, "GET", uri, &[("host", "127.0.0.1:3000")], "").await;
    assert_eq!(st, StatusCode::OK, "GET {uri}: {page}");
    page
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The values of every `name="..."` attribute in `html`, unescaped.
fn attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            value
                .replace("&#60;", "<")
                .replace("&#62;", ">")
                .replace("&#39;", "'")
                .replace("&#34;", "\"")
                .replace("&#38;", "&")
        })
        .collect()
}

/// `href` resolved against the page at `base` (a path), as a browser does
/// (RFC 3986 §5.2, paths only).
fn resolve(base: &str, href: &str) -> String {
    assert!(!href.contains("://") && !href.starts_with("//"), "{href} leaves the page's origin");
    if href.starts_with('#') {
        // A fragment (a skip link) stays on the page.
        return base.to_owned();
    }
    let joined =
        if href.starts_with('/') { href.to_owned() } else { format!("{}{href}", &base[..=base.rfind('/').unwrap()]) };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = joined.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." if last => out.push(""),
            "." => {}
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn links_resolve_as_in_a_browser() {
    assert_eq!(resolve("/scheduler/", "./jobs/a%2Fb"), "/scheduler/jobs/a%2Fb");
    assert_eq!(resolve("/scheduler", "./scheduler/"), "/scheduler/");
    assert_eq!(resolve("/scheduler/jobs/x", "../"), "/scheduler/");
    assert_eq!(resolve("/scheduler/jobs/x", "../api/v1/jobs"), "/scheduler/api/v1/jobs");
    assert_eq!(resolve("/", "./"), "/");
}

#[tokio::test]
async fn nested_beside_the_apps_own_routes_and_fallback() {
    let s = scheduler(&["report"]).await;
    let app = app(chime_web::Handle::new(s.clone()));

    // The app's own routes and fallback still answer, unguarded by chime
    // (a Host chime would refuse reaches them).
    let (st, body) = send(&app, "GET", "/", &[("host", "my-service.example.com")], "").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "my home page"));
    for path in ["/nope", "/scheduler/nope", "/scheduler/jobs/report/extra"] {
        let (st, body) = send(&app, "GET", path, &[("host", "my-service.example.com")], "").await;
        assert_eq!((st, body.as_str()), (StatusCode::NOT_FOUND, "my own 404"), "{path}");
    }
    let (st, _) = send(&app, "GET", "/scheduler", &[], "").await;
    assert_eq!(st, StatusCode::PERMANENT_REDIRECT);

    // The dashboard at /scheduler/, every link under /scheduler/.
    let page = get_page(&app, "/scheduler/").await;
    assert!(page.contains(r#"data-action="pause" data-id="report""#), "{page}");
    let hrefs = attributes(&page, "href");
    assert!(!hrefs.is_empty());
    for href in &hrefs {
        assert!(resolve("/scheduler/", href).starts_with("/scheduler/"), "{href}");
    }
    let roots = attributes(&page, "data-root");
    assert_eq!(roots.len(), 1);
    assert_eq!(resolve("/scheduler/", &roots[0]), "/scheduler/", "the page's fetch() calls start there");
    assert!(!page.contains("\"/api/v1"), "no absolute API path is left in the page's script");
    // The script the page loads, under the prefix, builds every URL from the root.
    let scripts = attributes(&page, "src");
    let script = resolve("/scheduler/", scripts.iter().find(|s| s.ends_with(".js")).expect("a script"));
    assert!(script.starts_with("/scheduler/"), "{script}");
    let (st, js) = send(&app, "GET", &script, &[], "").await;
    assert_eq!(st, StatusCode::OK, "{script}");
    for absolute in ["\"/api", "'/api", "`/api", "\"/jobs", "\"/runs", "\"/day", "location.origin"] {
        assert!(!js.contains(absolute), "the script names {absolute} outside the mount point");
    }
    assert!(js.contains("root + \"api/v1/"), "its calls start at the page's root");
    let job_link = hrefs.iter().map(|h| resolve("/scheduler/", h)).find(|h| h.contains("/jobs/")).unwrap();
    assert_eq!(job_link, "/scheduler/jobs/report");

    // The job's page links back under /scheduler/ too.
    let page = get_page(&app, &job_link).await;
    assert!(page.contains(r#"data-action="pause" data-id="report""#));
    let links: Vec<String> = attributes(&page, "href").iter().map(|h| resolve(&job_link, h)).collect();
    assert!(links.iter().all(|l| l.starts_with("/scheduler/")), "{links:?}");
    assert!(links.contains(&"/scheduler/".to_owned()), "back to all jobs: {links:?}");
    assert!(links.contains(&"/scheduler/runs?job=report".to_owned()), "to the job's runs: {links:?}");
    let root = resolve(&job_link, &attributes(&page, "data-root")[0]);
    assert_eq!(root, "/scheduler/");

    // The pause button's call, where the page's script sends it.
    let pause = format!("{root}api/v1/jobs/report/pause");
    assert_eq!(pause, "/scheduler/api/v1/jobs/report/pause");
    let (st, body) = send(&app, "POST", &pause, &SAME_ORIGIN, r#"{"reason": "from the dashboard"}"#).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["status"], "paused");
    assert_eq!(s.get_job("report").await.unwrap().state.paused.as_deref(), Some("from the dashboard"));

    // The rest of the API under the prefix, its errors in its own shape.
    let (st, body) = send(&app, "GET", "/scheduler/api/v1/jobs", &[], "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(json(&body)[0]["id"], "report");
    let (st, body) = send(&app, "GET", "/scheduler/api/v1/nope", &[], "").await;
    assert_eq!((st, json(&body)["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (st, body) = send(&app, "DELETE", "/scheduler/api/v1/stats", &[], "").await;
    assert_eq!(
        (st, json(&body)["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (st, body) = send(&app, "GET", "/scheduler/health", &[], "").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "not started yet");
    assert_eq!(json(&body)["status"], "unhealthy");
    let (st, body) = send(&app, "GET", "/scheduler/metrics", &[], "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(body.contains("chime_jobs"), "{body}");

    // chime's guard still covers chime's routes.
    let (st, _) = send(&app, "GET", "/scheduler/", &[("host", "evil.example.com")], "").await;
    assert_eq!(st, StatusCode::MISDIRECTED_REQUEST);
    let cross =
        [("origin", "http://evil.example.com"), ("host", "127.0.0.1:3000"), ("content-type", "application/json")];
    let (st, _) = send(&app, "POST", "/scheduler/api/v1/jobs/report/resume", &cross, "").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(s.get_job("report").await.unwrap().is_paused());
}

#[tokio::test]
async fn the_token_guards_the_mounted_routers() {
    let s = scheduler(&["report"]).await;
    let handle = chime_web::Handle::new(s.clone()).with_token(Some(TOKEN.into())).unwrap().with_read_token(true);
    let app = app(handle);
    let (st, _) = send(&app, "POST", "/scheduler/api/v1/jobs/report/pause", &SAME_ORIGIN, "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = send(&app, "GET", "/scheduler/", &[], "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the dashboard is a read");
    let (st, _) = send(&app, "GET", "/scheduler/health", &[], "").await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "health stays open");
    let (st, body) = send(&app, "GET", "/", &[], "").await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "my home page"), "the app's own routes need no token");
    let bearer = format!("Bearer {TOKEN}");
    let mut headers = SAME_ORIGIN.to_vec();
    headers.push(("authorization", &bearer));
    let (st, _) = send(&app, "POST", "/scheduler/api/v1/jobs/report/pause", &headers, "").await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn nested_without_the_slash_and_merged_at_the_root() {
    let s = scheduler(&["report"]).await;
    let handle = chime_web::Handle::new(s.clone());

    // Nested at /scheduler: the dashboard's address is /scheduler, and its
    // links still lead under /scheduler/.
    let chime = chime_web::api_router(handle.clone()).merge(chime_web::dashboard_router(handle.clone()));
    let app = Router::new()
        .route("/", get(|| async { "my home page" }))
        .nest("/scheduler", chime)
        .fallback(|| async { (StatusCode::NOT_FOUND, "my own 404") });
    let page = get_page(&app, "/scheduler").await;
    // (The skip link, `#content`, stays on the page.)
    let links: Vec<String> =
        attributes(&page, "href").iter().filter(|h| !h.starts_with('#')).map(|h| resolve("/scheduler", h)).collect();
    assert!(links.contains(&"/scheduler/jobs/report".to_owned()), "{links:?}");
    assert!(links.iter().all(|l| l.starts_with("/scheduler/")), "{links:?}");
    assert_eq!(resolve("/scheduler", &attributes(&page, "data-root")[0]), "/scheduler/");
    get_page(&app, "/scheduler/jobs/report").await;
    let (st, _) = send(&app, "POST", "/scheduler/api/v1/jobs/report/pause", &SAME_ORIGIN, "").await;
    assert_eq!(st, StatusCode::OK);

    // Merged at the root of an app with routes and a fallback of its own
    // (the app's fallback set before or after): no panic, both answer.
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "my own 404") })
        .merge(chime_web::api_router(handle.clone()))
        .merge(chime_web::dashboard_router(handle.clone()));
    assert_eq!(send(&app, "GET", "/hello", &[], "").await.1, "hello");
    assert_eq!(send(&app, "GET", "/nope", &[], "").await.1, "my own 404");
    let page = get_page(&app, "/").await;
    assert!(attributes(&page, "href").iter().any(|h| resolve("/", h) == "/jobs/report"));
    let (st, body) = send(&app, "POST", "/api/v1/jobs/report/resume", &SAME_ORIGIN, "").await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // And the API alone beside an app's own `/`.
    let app = Router::new()
        .route("/", get(|| async { "my home page" }))
        .merge(chime_web::api_router(handle))
        .fallback(|| async { (StatusCode::NOT_FOUND, "my own 404") });
    assert_eq!(send(&app, "GET", "/", &[], "").await.1, "my home page");
    assert_eq!(send(&app, "GET", "/jobs/report", &[], "").await.1, "my own 404", "no dashboard");
    assert_eq!(send(&app, "GET", "/api/v1/jobs/report", &[], "").await.0, StatusCode::OK);
}

/// Ids a URL path cannot carry as they are.
const AWKWARD: [&str; 7] = ["a/b?c#d", "with space", "100%", "%2F", "ünïcödé ☃", "a+b&c=d;e", "x'y\"z<>"];

#[tokio::test]
async fn ids_that_need_encoding_round_trip_through_links_and_the_api() {
    let s = scheduler(&[]).await;
    let app = app(chime_web::Handle::new(s.clone()));
    for id in AWKWARD {
        let new = json!({"id": id, "task": "noop", "trigger": {"type": "interval", "every": "5m"}}).to_string();
        let (st, body) = send(&app, "POST", "/scheduler/api/v1/jobs", &SAME_ORIGIN, &new).await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        assert_eq!(json(&body)["id"], id);
    }

    // Every job's dashboard link leads to its own page.
    let page = get_page(&app, "/scheduler/").await;
    let links: Vec<String> =
        attributes(&page, "href").iter().map(|h| resolve("/scheduler/", h)).filter(|l| l.contains("/jobs/")).collect();
    assert_eq!(links.len(), AWKWARD.len(), "{links:?}");
    let mut seen = Vec::new();
    for link in &links {
        let segment = link.strip_prefix("/scheduler/jobs/").unwrap();
        assert!(!segment.contains(['/', '?', '#', ' ']), "{link} is one segment");
        let id = percent_decode(segment);
        assert!(AWKWARD.contains(&id.as_str()), "{link} decodes to {id:?}");
        let page = get_page(&app, link).await;
        assert_eq!(attributes(&page, "data-id")[0], id, "{link} shows its own job");
        seen.push(id);
    }
    seen.sort();
    let mut all = AWKWARD.map(str::to_owned).to_vec();
    all.sort();
    assert_eq!(seen, all);
    // The day view and the runs list link each job to its own page too.
    for id in AWKWARD {
        s.run_job_now(id).await.unwrap();
    }
    let day = get_page(&app, "/scheduler/day").await;
    // The first hour the jobs fire in: made in an hour's last five minutes,
    // they first fire in the next one.
    let hour = day
        .split("<a ")
        .map(|tag| format!(" {}", &tag[..tag.find('>').unwrap_or(tag.len())]))
        .find(|tag| attributes(tag, "data-fires").first().is_some_and(|fires| fires != "0"))
        .map(|tag| resolve("/scheduler/day", &attributes(&tag, "href")[0]))
        .unwrap();
    assert!(hour.contains("hour="), "{hour}");
    for view in [hour.as_str(), "/scheduler/runs"] {
        let page = get_page(&app, view).await;
        let to_jobs: Vec<String> =
            attributes(&page, "href").iter().map(|h| resolve(view, h)).filter(|l| l.contains("/jobs/")).collect();
        assert!(!to_jobs.is_empty(), "{view} links to jobs");
        for link in to_jobs {
            let id = percent_decode(link.strip_prefix("/scheduler/jobs/").unwrap());
            assert!(AWKWARD.contains(&id.as_str()), "{view}: {link} decodes to {id:?}");
            assert_eq!(attributes(&get_page(&app, &link).await, "data-id")[0], id, "{view}: {link}");
        }
    }
    // The buttons carry the ids as they are, for the script to encode.
    let mut ids = attributes(&page, "data-id");
    ids.sort();
    ids.dedup();
    assert_eq!(ids, all);

    // The API decodes them, in every job route.
    let (st, body) = send(&app, "GET", "/scheduler/api/v1/jobs/a%2Fb%3Fc%23d", &[], "").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["job"]["id"], "a/b?c#d");
    let (st, body) =
        send(&app, "GET", "/scheduler/api/v1/jobs/%C3%BCn%C3%AFc%C3%B6d%C3%A9%20%E2%98%83/stats", &[], "").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = send(&app, "POST", "/scheduler/api/v1/jobs/100%25/pause", &SAME_ORIGIN, "").await;
    assert_eq!((st, json(&body)["id"].as_str()), (StatusCode::OK, Some("100%")));
    let (st, body) = send(&app, "POST", "/scheduler/api/v1/jobs/%252F/pause", &SAME_ORIGIN, "").await;
    assert_eq!((st, json(&body)["id"].as_str()), (StatusCode::OK, Some("%2F")));
    assert!(s.get_job("100%").await.unwrap().is_paused() && s.get_job("%2F").await.unwrap().is_paused());
    assert!(!s.get_job("a/b?c#d").await.unwrap().is_paused(), "only the job named");
    let (st, _) = send(&app, "PATCH", "/scheduler/api/v1/jobs/a+b&c=d;e", &SAME_ORIGIN, r#"{"name": "plus"}"#).await;
    assert_eq!(st, StatusCode::OK, "sub-delimiters may also go unencoded");
    let (st, body) = send(&app, "DELETE", "/scheduler/api/v1/jobs/with%20space", &SAME_ORIGIN, "").await;
    assert_eq!((st, json(&body)["removed"]["id"].as_str()), (StatusCode::OK, Some("with space")));
    // Unencoded, the id is other path segments: no such route.
    let (st, body) = send(&app, "GET", "/scheduler/api/v1/jobs/a/b", &[], "").await;
    assert_eq!((st, json(&body)["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}
