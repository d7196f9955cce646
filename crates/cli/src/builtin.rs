//! The tasks `chime serve` offers with no Rust code: `command` and `http`.
//! Everything a run needs is in the job's arguments, so a job stored by the
//! server can also be run by the CLI (`chime jobs run ID --here`).

use std::collections::BTreeMap;
use std::time::Duration;

use chime_core::{JobContext, TaskError, TaskRegistry};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Output kept per run, in bytes: the tail of stdout and stderr.
const OUTPUT_TAIL: usize = 4096;

/// The arguments of a `command` job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandSpec {
    /// The program, then its arguments; with `shell`, one shell command line.
    pub(crate) argv: Vec<String>,
    /// Run through `/bin/sh -c` (off unless asked for).
    #[serde(default)]
    pub(crate) shell: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) working_dir: Option<String>,
}

/// The arguments of an `http` job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSpec {
    pub(crate) url: String,
    #[serde(default = "default_method")]
    pub(crate) method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<String>,
    /// A PEM file of extra certificate authorities to trust for https, beside
    /// the bundled Mozilla roots (for a private CA or a self-signed server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

pub(crate) fn registry() -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks.register("command", |ctx: JobContext| async move { run_command(ctx).await });
    tasks.register("http", |ctx: JobContext| async move { run_http(ctx).await });
    tasks
}

async fn run_command(ctx: JobContext) -> Result<(), TaskError> {
    let spec: CommandSpec = ctx.args()?;
    let (program, args) = if spec.shell {
        ("/bin/sh".to_owned(), vec!["-c".to_owned(), spec.argv.join(" ")])
    } else {
        let (program, args) = spec.argv.split_first().ok_or("the command is empty")?;
        (program.clone(), args.to_vec())
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&args)
        .envs(&spec.env)
        .env("CHIME_JOB_ID", ctx.job_id.as_str())
        .env("CHIME_RUN_ID", ctx.run_id.to_string())
        .env("CHIME_SCHEDULED_FOR", ctx.scheduled_for.to_string())
        .env("CHIME_ATTEMPT", ctx.attempt.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A run that times out or is cancelled is dropped: the child dies with it.
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let output = child.wait_with_output().await.map_err(|e| format!("waiting for {program:?}: {e}"))?;
    let tail = output_tail(&output.stdout, &output.stderr);
    if !tail.is_empty() {
        ctx.set_output(tail.clone());
    }
    if output.status.success() {
        tracing::info!(job_id = %ctx.job_id, run_id = %ctx.run_id, output = %tail, "command succeeded");
        Ok(())
    } else {
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        };
        Err(if tail.is_empty() { status } else { format!("{status}; output: {tail}") }.into())
    }
}

/// The last few KiB of stdout then stderr, as text.
fn output_tail(stdout: &[u8], stderr: &[u8]) -> String {
    let mut all = String::from_utf8_lossy(stdout).into_owned();
    let err = String::from_utf8_lossy(stderr);
    if !err.trim().is_empty() {
        all.push_str(&err);
    }
    let all = all.trim();
    let mut start = all.len().saturating_sub(OUTPUT_TAIL);
    while !all.is_char_boundary(start) {
        start += 1;
    }
    all[start..].to_owned()
}

/// A small HTTP/1.1 client for `http://` and `https://` URLs: 2xx is success.
async fn run_http(ctx: JobContext) -> Result<(), TaskError> {
    let spec: HttpSpec = ctx.args()?;
    let url = parse_http_url(&spec.url)?;
    let (host, port) = (url.host.as_str(), url.port);
    let tcp = tokio::time::timeout(Duration::from_secs(30), tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("connecting to {host}:{port} timed out"))?
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let body = spec.body.clone().unwrap_or_default();
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: chime\r\nConnection: close\r\nContent-Length: {}\r\n",
        spec.method.to_ascii_uppercase(),
        url.path,
        body.len()
    );
    for (k, v) in &spec.headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let response = if url.tls {
        let connector = tls_connector(spec.ca_cert.as_deref())?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?}: {e}"))?;
        let stream = connector.connect(name, tcp).await.map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        exchange(stream, &request).await?
    } else {
        exchange(tcp, &request).await?
    };
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response from {}: {status_line:?}", spec.url))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let body: String = body.chars().take(OUTPUT_TAIL).collect();
        Err(format!("{} answered {status_line}; body: {}", spec.url, body.trim()).into())
    }
}

/// Sends the request and reads the response (at most 1 MiB).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<Vec<u8>, TaskError> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    // A server that closes without TLS close_notify still sent a whole response.
    match (&mut stream).take(1 << 20).read_to_end(&mut response).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(response)
}

fn tls_connector(extra_ca: Option<&str>) -> Result<tokio_rustls::TlsConnector, TaskError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        use rustls::pki_types::pem::PemObject as _;
        for cert in
            rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| format!("ca_cert {path:?}: {e}"))?
        {
            let cert = cert.map_err(|e| format!("ca_cert {path:?}: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca_cert {path:?}: {e}"))?;
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// The parts of an `http://` or `https://` URL the client needs.
#[derive(Debug, PartialEq)]
pub(crate) struct HttpUrl {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
}

/// `http[s]://host[:port]/path`. Other schemes are refused.
pub(crate) fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(format!("{url:?} is not an http:// or https:// URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{url:?}: bad port {p:?}"))?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(HttpUrl { tls, host: host.to_owned(), port, path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls() {
        let u = |tls, host: &str, port, path: &str| HttpUrl { tls, host: host.into(), port, path: path.into() };
        assert_eq!(parse_http_url("http://127.0.0.1:8080/health").unwrap(), u(false, "127.0.0.1", 8080, "/health"));
        assert_eq!(parse_http_url("http://example.com").unwrap(), u(false, "example.com", 80, "/"));
        assert_eq!(parse_http_url("https://example.com/x?y=1").unwrap(), u(true, "example.com", 443, "/x?y=1"));
        assert!(parse_http_url("ftp://x").unwrap_err().contains("not an http:// or https:// URL"));
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://h:99999/").is_err());
    }

    #[test]
    fn output_tail_keeps_the_end() {
        let long = "x".repeat(10_000) + "END";
        let tail = output_tail(long.as_bytes(), b"");
        assert_eq!(tail.len(), OUTPUT_TAIL);
        assert!(tail.ends_with("END"));
        assert_eq!(output_tail(b"out\n", b"err\n"), "out\nerr");
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use chime_core::JobId;

    /// A one-request HTTP server on 127.0.0.1 that answers `status` and
    /// returns the request it received.
    async fn serve_once(status: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            let body = "pong";
            let response =
                format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (port, handle)
    }

    fn ctx(args: serde_json::Value) -> JobContext {
        JobContext::new(JobId::new("ping").unwrap(), args)
    }

    #[tokio::test]
    async fn a_2xx_answer_is_success_and_the_request_is_what_the_job_says() {
        let (port, server) = serve_once("204 No Content").await;
        let args = serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook?x=1"), "method": "post", "headers": {"X-Token": "t"}, "body": "{}"});
        run_http(ctx(args)).await.unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("X-Token: t\r\n") && request.contains("Content-Length: 2\r\n") && request.ends_with("{}")
        );
    }

    #[tokio::test]
    async fn other_answers_fail_with_the_status_line_and_body() {
        let (port, server) = serve_once("503 Service Unavailable").await;
        let err = run_http(ctx(serde_json::json!({"url": format!("http://127.0.0.1:{port}/")}))).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("http://127.0.0.1:{port}/ answered HTTP/1.1 503 Service Unavailable; body: pong")
        );
        server.await.unwrap();
    }

    /// An https server for "localhost" with a fresh self-signed certificate;
    /// returns its port and the certificate's PEM.
    async fn serve_tls_once(status: &'static str) -> (u16, String, tokio::task::JoinHandle<()>) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_pem = key.cert.pem();
        let cert = key.cert.der().clone();
        let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], private)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(socket).await else { return };
            let mut buf = vec![0u8; 4096];
            let _ = tls.read(&mut buf).await.unwrap();
            let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            tls.write_all(response.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
        });
        (port, cert_pem, handle)
    }

    #[tokio::test]
    async fn https_works_with_a_trusted_certificate_and_refuses_an_untrusted_one() {
        let dir = tempfile::tempdir().unwrap();
        let (port, pem, server) = serve_tls_once("200 OK").await;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let args =
            serde_json::json!({"url": format!("https://localhost:{port}/health"), "ca_cert": ca.to_str().unwrap()});
        run_http(ctx(args)).await.unwrap();
        server.await.unwrap();

        let (port, _pem, server) = serve_tls_once("200 OK").await;
        let err = run_http(ctx(serde_json::json!({"url": format!("https://localhost:{port}/")}))).await.unwrap_err();
        assert!(err.to_string().starts_with(&format!("TLS with localhost:{port}")), "{err}");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_port_fails_clearly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = run_http(ctx(serde_json::json!({"url": format!("http://127.0.0.1:{port}/")}))).await.unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{err}");
    }
}
