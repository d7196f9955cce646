//! Three `chime serve` nodes on one PostgreSQL schema, 200 jobs every second
//! (each run 300 ms, so a node always holds runs in flight):
//! one node is killed with SIGKILL and started again, one is frozen with
//! SIGSTOP past its lease and continued, and the third is stopped with
//! SIGTERM and started again. Each blow lands after the last one is over, and
//! all three nodes record runs after the last. From the run table afterwards: every
//! scheduled second of every job has exactly one run row, the runs the dead
//! and the frozen node held were taken over (`abandoned`), and no job's
//! successes are further apart than its second plus a lease plus a second
//! (and some slack for a loaded machine).
//!
//! Runs against `DATABASE_URL`; reported as ignored without it (and without
//! `CHIME_REQUIRE_PG=1`), a failure when the server does not answer.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chime_testkit::pg;
use common::{DropSchema, Server, json, wait_for};
use jiff::{SignedDuration, Timestamp};

const JOBS: usize = 200;
const LEASE: SignedDuration = SignedDuration::from_secs(2);
/// Room for a loaded 2-core machine running three debug servers and 200 processes a second.
const SLACK: SignedDuration = SignedDuration::from_millis(1500);

fn serve(dir: &std::path::Path, store: &str, node: &str) -> Server {
    Server::start(dir, &["--config", "chime.toml", "--store", store, "--no-http", "--node-id", node], &[])
}

#[test]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
fn three_nodes_fire_every_second_once_through_a_kill_a_freeze_and_a_restart() {
    let url = pg::database_url();
    let schema = pg::unique_schema("chime_chaos");
    let _cleanup = DropSchema::new(&url, &schema);
    let store = pg::with_schema(&url, &schema);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut config =
        format!("[scheduler]\ntimezone = \"UTC\"\nnode_lease = \"{}s\"\nshutdown_grace = \"2s\"\n", LEASE.as_secs());
    for i in 0..JOBS {
        // Runs of 300 ms: a frozen node always holds some in flight.
        config.push_str(&format!("[[job]]\nid = \"j{i:03}\"\nevery = \"1s\"\ncommand = [\"sleep\", \"0.3\"]\n"));
    }
    std::fs::write(d.join("chime.toml"), config).unwrap();

    let a = serve(d, &store, "node-a");
    let b = serve(d, &store, "node-b");
    let c = serve(d, &store, "node-c");
    wait_for("three nodes", Duration::from_secs(30), || {
        json(d, &["nodes", "--store", &store]).as_array().is_some_and(|n| n.len() == 3)
    });
    let from = Timestamp::now() + SignedDuration::from_secs(2);
    // Each blow lands while the node holds runs in flight. The node is frozen
    // first and its runs counted from the store while it cannot change them:
    // a count taken before the signal could be stale by the time it lands
    // (the runs last 300 ms of every second). A frozen node's rows stay as
    // they are until its lease runs out, so a count of zero means thaw and
    // try again a moment later.
    let freeze_holding_runs = |server: &Server, node: &str| {
        wait_for(&format!("{node} to be frozen holding runs"), Duration::from_secs(30), || {
            server.signal("-STOP");
            let holds = json(d, &["nodes", "--store", &store])
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["id"] == node && n["running"].as_u64().is_some_and(|r| r > 0));
            if !holds {
                server.signal("-CONT");
            }
            holds
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    freeze_holding_runs(&a, "node-a");
    a.signal("-KILL");
    drop(a);
    // One blow at a time: node-a is swept, and its jobs run again, before node-b freezes.
    wait_for("node-a's lease to be swept", Duration::from_secs(20), || {
        !json(d, &["nodes", "--store", &store]).as_array().unwrap().iter().any(|n| n["id"] == "node-a")
    });
    std::thread::sleep(Duration::from_secs(3));
    freeze_holding_runs(&b, "node-b");
    // Three leases: without a sweeper, node-b's runs would hold their jobs this long.
    std::thread::sleep(Duration::from_secs(3 * LEASE.as_secs() as u64));
    b.signal("-CONT");
    let a = serve(d, &store, "node-a"); // waits for its old lease to run out, then rejoins
    std::thread::sleep(Duration::from_secs(3));
    // The third blow: node-c stops cleanly (its runs finish, its lease ends)
    // and starts again at once, under the same id.
    c.stop();
    let c = serve(d, &store, "node-c");
    let rejoined = Timestamp::now();
    std::thread::sleep(Duration::from_secs(4));
    let until = Timestamp::now() - SignedDuration::from_secs(2);
    for s in [a, b, c] {
        s.stop();
    }

    let runs = json(d, &["history", "--store", &store, "--limit", "1000000"]);
    let mut by_job: BTreeMap<String, Vec<(Timestamp, String)>> = BTreeMap::new();
    let mut tally: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in runs.as_array().unwrap() {
        *tally
            .entry((r["node"].as_str().unwrap_or("-").to_owned(), r["status"].as_str().unwrap().to_owned()))
            .or_default() += 1;
        let at: Timestamp = r["scheduled_for"].as_str().unwrap().parse().unwrap();
        by_job
            .entry(r["job_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((at, r["status"].as_str().unwrap().to_owned()));
    }
    eprintln!("runs by node and status: {tally:?}");
    // After the last blow, the restarted nodes (a, c) and the thawed one (b) all run jobs again.
    for node in ["node-a", "node-b", "node-c"] {
        let after = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["node"] == node && r["status"] == "succeeded")
            .filter(|r| r["scheduled_for"].as_str().unwrap().parse::<Timestamp>().unwrap() > rejoined)
            .count();
        assert!(after > 0, "{node} recorded successful runs after node-c rejoined at {rejoined}: {tally:?}");
    }
    assert_eq!(by_job.len(), JOBS, "every job ran");
    for node in ["node-a", "node-b"] {
        assert!(
            tally.get(&(node.to_owned(), "abandoned".to_owned())).is_some_and(|n| *n > 0),
            "{node}'s runs in flight were taken over as abandoned: {tally:?}"
        );
    }
    let mut worst = SignedDuration::ZERO;
    let mut worst_job = String::new();
    for (job, mut rows) in by_job {
        rows.sort();
        let times: Vec<Timestamp> = rows.iter().map(|(t, _)| *t).filter(|t| *t >= from && *t <= until).collect();
        for pair in times.windows(2) {
            assert_eq!(
                pair[1].duration_since(pair[0]),
                SignedDuration::from_secs(1),
                "{job}: every second has one row, none twice: {pair:?}"
            );
        }
        assert!(
            times.len() as i64 >= until.duration_since(from).as_secs() - 1,
            "{job}: {} rows in the window",
            times.len()
        );
        let ok: Vec<Timestamp> =
            rows.iter().filter(|(t, s)| s == "succeeded" && *t >= from && *t <= until).map(|(t, _)| *t).collect();
        for pair in ok.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            if gap > worst {
                worst = gap;
                worst_job = format!(
                    "{job}: {:?}",
                    rows.iter().filter(|(t, _)| *t >= pair[0] && *t <= pair[1]).collect::<Vec<_>>()
                );
            }
        }
    }
    // Successes of a job every second are a second apart; a failover adds at
    // most a lease (until the dead lease expires) plus a second (the sweep
    // and the next fire).
    let bound = SignedDuration::from_secs(1) + LEASE + SignedDuration::from_secs(1) + SLACK;
    eprintln!("longest time a job went without a successful run: {worst:#} (bound {bound:#}): {worst_job}");
    assert!(worst <= bound, "a job went {worst:#} without a successful run (bound {bound:#})");
}

/// The store URL of `DATABASE_URL` with a password in it, and the password:
/// the URL's own, or `s3cret` added (the test server trusts any).
fn url_with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (userinfo, host) = rest.split_once('@').unwrap_or_else(|| panic!("DATABASE_URL={url} names no user"));
    match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => (url.to_owned(), password.to_owned()),
        _ => {
            let user = userinfo.split(':').next().unwrap();
            (format!("{scheme}://{user}:s3cret@{host}"), "s3cret".to_owned())
        }
    }
}

/// A `chime serve` with stdout and stderr in files, killed when dropped.
struct Logged {
    child: std::process::Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Logged {
    fn start(dir: &std::path::Path, args: &[&str]) -> Logged {
        let (stdout, stderr) = (dir.join("serve.out"), dir.join("serve.err"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chime"))
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("CHIME_STORE")
            .env_remove("CHIME_API_TOKEN")
            // Every line it can log, the listener's retries included.
            .env("CHIME_LOG", "debug")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Logged { child, stdout, stderr }
    }

    /// Everything it printed and logged so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap() + &std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chime serve` and `chime nodes` on a URL with a password print and log
/// the URL without it: at start, while running (a lost listening connection
/// logged and recovered), at stop, and in `chime nodes`'s answers and errors.
#[test]
#[cfg_attr(not(chime_pg_test), ignore = "needs DATABASE_URL (a PostgreSQL server) or CHIME_REQUIRE_PG=1")]
fn the_store_password_is_never_printed_or_logged() {
    let url = pg::database_url();
    let schema = pg::unique_schema("chime_secret");
    let _cleanup = DropSchema::new(&url, &schema);
    let (with_password, secret) = url_with_password(&pg::with_schema(&url, &schema));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut shown = Vec::new();
    let mut check = |what: &str, text: String| {
        assert!(!text.contains(&secret), "{what} shows the password:\n{text}");
        shown.push(text);
    };

    // No node yet: the answer names the store.
    let none = common::chime(d, &["nodes", "--store", &with_password]);
    assert!(none.status.success(), "{}", common::stderr(&none));
    let answer = common::stdout(&none) + &common::stderr(&none);
    assert!(answer.contains("no node is registered in postgres://"), "{answer}");
    check("chime nodes with no node", answer);

    let server = Logged::start(d, &["--store", &with_password, "--no-http", "--node-id", "secret-node"]);
    wait_for("the server to start", Duration::from_secs(30), || server.output().contains("chime is running"));
    let nodes = common::chime(d, &["nodes", "--store", &with_password]);
    check("chime nodes", common::stdout(&nodes) + &common::stderr(&nodes));
    // A listening connection lost and back: both logged, with the database named.
    let killed = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-qtAc",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN \"chime_{schema}\"'"
            ),
        ])
        .output();
    if killed.as_ref().is_ok_and(|k| k.status.success()) {
        wait_for("the listener to be back", Duration::from_secs(20), || {
            server.output().contains("listening for changes again")
        });
    } else {
        eprintln!("psql is not here: the listener's reconnect is not part of this run");
    }
    // A server that does not answer: the error names it without the password.
    let refused = common::chime(d, &["nodes", "--store", &with_password.replace(":5432/", ":1/")]);
    check("chime nodes on a closed port", common::stdout(&refused) + &common::stderr(&refused));

    assert!(
        std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap().success()
    );
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "stopped cleanly: {status:?}");
    let output = server.output();
    assert!(output.contains("chime is running on postgres://"), "{output}");
    assert!(output.contains(&format!("schema={schema}")), "the URL is shown, only its password is not: {output}");
    check("chime serve's output and log", output);
}
