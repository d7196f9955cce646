//! `chime init`: its refusals, and the project it writes, tested with
//! `make test` on the workspace's target directory (so the compiled
//! dependencies are reused), offline, with the workspace's `Cargo.lock` (so
//! nothing is downloaded), then run with `make serve` until `/health`
//! answers and the API lists the two jobs, and stopped with SIGTERM.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chime_testkit::pg;
use common::{chime, http, stderr, stdout, wait_for};

/// The workspace this binary was built in.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The target directory the `chime` binary of this test was built into.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_chime"));
    bin.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    let root = workspace();
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--chime-path", root.to_str().unwrap()]);
    chime(dir, &all)
}

/// Asserts `out` is a refusal (exit 2) whose message holds every one of `words`.
fn refused(out: &std::process::Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stdout: {}\nstderr: {err}", stdout(out));
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

#[test]
fn names_that_are_not_crate_names_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    refused(&init(dir.path(), &[""]), &["empty"]);
    refused(&init(dir.path(), &["9lives"]), &["start with a digit"]);
    refused(&init(dir.path(), &["My-App"]), &["lowercase", "\"my-app\""]);
    refused(&init(dir.path(), &["my.app"]), &["'.'", "a-z"]);
    refused(&init(dir.path(), &["../elsewhere"]), &["'.'"]);
    for reserved in ["test", "std", "core", "chime"] {
        refused(&init(dir.path(), &[reserved]), &["reserved"]);
    }
    refused(&init(dir.path(), &["fn"]), &["keyword"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");
}

#[test]
fn a_non_empty_folder_is_refused_and_force_overwrites_only_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-app");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("notes.txt"), "mine").unwrap();
    std::fs::write(project.join("src/main.rs"), "// an old main").unwrap();
    refused(&init(dir.path(), &["my-app"]), &["./my-app exists and is not empty", "--force"]);
    assert_eq!(std::fs::read_to_string(project.join("src/main.rs")).unwrap(), "// an old main");

    let out = init(dir.path(), &["my-app", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("my-app/src/main.rs (overwritten)"), "{printed}");
    assert!(printed.contains("my-app/Cargo.toml\n"), "{printed}");
    assert!(printed.ends_with("next:\n  cd my-app\n  make serve\n"), "{printed}");
    assert_eq!(
        std::fs::read_to_string(project.join("notes.txt")).unwrap(),
        "mine",
        "a file init does not write is kept"
    );
    assert!(std::fs::read_to_string(project.join("src/main.rs")).unwrap().contains("create_scheduler"));

    // An empty folder needs no --force; a file in the way is refused.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    assert!(init(dir.path(), &["empty"]).status.success());
    std::fs::write(dir.path().join("afile"), "").unwrap();
    refused(&init(dir.path(), &["afile", "--force"]), &["not a folder"]);
}

#[test]
fn a_chime_path_that_is_not_a_checkout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = chime(dir.path(), &["init", "my-app", "--chime-path", dir.path().to_str().unwrap()]);
    refused(&out, &["not a chime checkout", "crates/chime/Cargo.toml"]);
    // A crates/chime of another project (the `chime` on crates.io, say) is not one either.
    std::fs::create_dir_all(dir.path().join("crates/chime")).unwrap();
    std::fs::write(dir.path().join("crates/chime/Cargo.toml"), "[package]\nname = \"chime\"\nversion = \"0.6.0\"\n")
        .unwrap();
    let out = chime(dir.path(), &["init", "my-app", "--chime-path", dir.path().to_str().unwrap()]);
    refused(&out, &["not a chime checkout", "\"chime-scheduler\""]);
    assert!(!dir.path().join("my-app").exists());
}

#[test]
fn the_project_depends_on_the_checkout_by_path_in_a_workspace_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    // Without --chime-path: the checkout this chime was built from.
    let out = chime(dir.path(), &["init", "my-app", "--store", "sqlite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(dir.path().join("my-app/Cargo.toml")).unwrap();
    let facade = workspace().join("crates/chime");
    assert!(
        manifest.contains(&format!(
            r#"chime = {{ package = "chime-scheduler", path = "{}", features = ["sqlite", "web", "tasks"] }}"#,
            facade.display()
        )),
        "{manifest}"
    );
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
    for file in [".env.example", ".gitignore", "Makefile", "README.md", "src/services/mod.rs", "tests/schedule.rs"] {
        assert!(dir.path().join("my-app").join(file).is_file(), "{file}");
    }
    let env = std::fs::read_to_string(dir.path().join("my-app/.env.example")).unwrap();
    for key in ["CHIME_STORE=sqlite://my-app.db", "CHIME_TIMEZONE=", "CHIME_API_TOKEN="] {
        assert!(env.contains(key), "{key} not in .env.example");
    }
}

/// Splits a shell command line of the docs: words, and "double-quoted" words.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => (word, any) = (word + &c.to_string(), true),
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// docs/examples.md: every `$ chime ...` of its console blocks is run again
/// and prints what the page shows.
#[test]
fn the_fire_times_of_the_examples_page_are_what_chime_prints() {
    let page = std::fs::read_to_string(workspace().join("docs/examples.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut checked, mut lines) = (0, page.lines().peekable());
    while let Some(line) = lines.next() {
        if line != "```console" {
            continue;
        }
        while let Some(command) = lines.next_if(|l| l.starts_with("$ chime ")) {
            let mut expected = String::new();
            while let Some(l) = lines.next_if(|l| !l.starts_with('$') && *l != "```") {
                expected.push_str(l);
                expected.push('\n');
            }
            let args = words(&command["$ chime ".len()..]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = chime(dir.path(), &args);
            assert!(out.status.success(), "{command}: {}", stderr(&out));
            assert_eq!(stdout(&out), expected, "{command} prints something else than docs/examples.md shows");
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} commands in docs/examples.md");
}

/// `make serve` running in a process group of its own, the whole group
/// killed when dropped (so a failed test leaves no service behind); its
/// stdout collected.
struct Service {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Service {
    fn spawn(mut command: Command) -> Service {
        use std::os::unix::process::CommandExt as _;
        let mut child = command.process_group(0).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (stdout, collected) = (child.stdout.take().unwrap(), std::sync::Arc::clone(&out));
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Service { child, out }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}

/// The pid of `parent`'s one child process (`make serve`'s service: `cargo
/// run` execs the binary in its own place).
fn only_child(parent: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    let mut pids = children.split_whitespace().map(|p| p.parse::<u32>().unwrap());
    let pid = pids.next()?;
    assert!(pids.next().is_none(), "make serve started more than one process: {children}");
    Some(pid)
}

/// `make serve` in `project` on a port the service picks (`PORT=0`): waits
/// for `/health` and the two jobs in the API, stops the service with SIGTERM
/// as Ctrl-C or a container runtime would, and returns what it printed.
/// `make` exits with the service's status, so a clean stop is a clean exit.
fn make_serve_and_stop(project: &Path, env: &[(&str, &str)]) -> String {
    let mut command = Command::new("make");
    command
        .arg("serve")
        .current_dir(project)
        .env("PORT", "0")
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("DATABASE_URL")
        .env_remove("CHIME_STORE")
        .env_remove("CHIME_API_TOKEN")
        .env_remove("SCHEDULER_FORCE_UPDATE");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut make = Service::spawn(command);
    let mut port = 0;
    wait_for("the service to say where it listens", Duration::from_secs(120), || {
        assert!(make.child.try_wait().unwrap().is_none(), "make serve exited: {}", make.output());
        let out = make.output();
        let Some(rest) = out.split("dashboard on http://127.0.0.1:").nth(1) else { return false };
        port = rest.split('/').next().unwrap().parse().unwrap();
        true
    });
    let addr = format!("127.0.0.1:{port}");
    wait_for("/health to answer 200", Duration::from_secs(30), || {
        http::get(&addr, "/health").is_some_and(|r| r.status == 200)
    });
    let jobs = http::get(&addr, "/api/v1/jobs").unwrap();
    let body = jobs.body;
    assert_eq!(jobs.status, 200, "{body}");
    let jobs: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut ids: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["daily_report", "temp_cleanup"], "{body}");
    let service = only_child(make.child.id()).expect("make serve runs the service");
    assert!(Command::new("kill").args(["-TERM", &service.to_string()]).status().unwrap().success());
    let status = make.child.wait().unwrap();
    assert!(status.success(), "make serve stopped cleanly: {status:?}\n{}", make.output());
    wait_for("the service's last line", Duration::from_secs(5), || make.output().contains("stopped\n"));
    make.output()
}

/// `chime init NAME --store STORE` in a temporary folder, then its tests and
/// its server, as a user would run `make test` and `make serve`.
fn init_build_test_serve(store: &str, env: &[(&str, &str)]) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // A name of its own per store: the binaries share the target directory.
    let name = format!("chime-init-{store}");
    let out = init(dir.path(), &[&name, "--store", store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let project = dir.path().join(&name);
    // The workspace's lock: the versions chime is tested with, all of them built already.
    std::fs::copy(workspace().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();

    let cargo = |args: &[&str]| {
        let out = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("DATABASE_URL")
            .env_remove("SCHEDULER_FORCE_UPDATE")
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo {args:?} in {name}:\n{}\n{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let make_test = Command::new("make")
        .arg("test")
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("DATABASE_URL")
        .env_remove("SCHEDULER_FORCE_UPDATE")
        .output()
        .unwrap();
    let tests = stdout(&make_test);
    assert!(make_test.status.success(), "make test in {name}:\n{tests}\n{}", stderr(&make_test));
    assert!(tests.contains("test a_day_runs_the_report_once_at_nine_and_the_cleanup_six_times ... ok"), "{tests}");
    let built = started.elapsed();
    // `make check` formats with the default rustfmt settings: the templates are formatted so.
    if Command::new(env!("CARGO")).args(["fmt", "--version"]).output().is_ok_and(|o| o.status.success()) {
        cargo(&["fmt", "--check"]);
    }

    let first = make_serve_and_stop(&project, env);
    assert!(first.contains("jobs synced: added 2, updated 0, kept 0, orphaned 0"), "{first}");
    if store != "memory" {
        // The jobs survived the restart: nothing to add.
        let second = make_serve_and_stop(&project, env);
        assert!(second.contains("jobs synced: added 0, updated 0, kept 2, orphaned 0"), "{second}");
    }
    eprintln!(
        "chime init --store {store}: built and tested in {built:?}, served and stopped in {:?}",
        started.elapsed() - built
    );
}

#[test]
fn a_generated_project_builds_passes_its_tests_and_serves_its_two_jobs() {
    let started = Instant::now();
    init_build_test_serve("memory", &[]);
    init_build_test_serve("sqlite", &[]);
    eprintln!("chime init: memory and sqlite in {:?}", started.elapsed());
}

/// `--store postgres` on the server of `DATABASE_URL`, in a schema of this
/// test's own (so the first start adds both jobs), dropped after.
#[test]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
fn a_generated_postgres_project_builds_passes_its_tests_and_serves_its_two_jobs() {
    let url = pg::database_url();
    let schema = pg::unique_schema("chime_init");
    let _cleanup = common::DropSchema::new(&url, &schema);
    let url = pg::with_schema(&url, &schema);
    init_build_test_serve("postgres", &[("DATABASE_URL", &url)]);
}
