//! `chime init NAME`: a new Cargo project with a scheduler in it, its jobs
//! declared in code, the dashboard and API served, and a test that proves
//! the jobs' schedules on virtual time. The files are the templates under
//! `templates/init/`, embedded in the binary.
//!
//! chime's packages are `chime-scheduler` (the library, still `use chime`)
//! and `chime-scheduler-cli` (the `chime` binary): the names `chime` and
//! `chime-cli` on crates.io belong to other projects. They are not
//! published yet, so a generated project
//! depends on a chime checkout by path: the one this binary was built from,
//! or `--chime-path`. Without either, `init` refuses rather than depend on
//! someone else's crate.

use std::path::{Path, PathBuf};

use crate::args::{InitArgs, InitStore};
use crate::error::CliError;

/// Names cargo or Rust refuse for a package, or that would clash with a
/// crate the generated project depends on.
const RESERVED: &[&str] = &[
    // The standard library's crates.
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "test",
    // Cargo's own directory names.
    "build",
    "deps",
    "examples",
    "incremental",
    // Dependencies of the generated project.
    "chime",
    "chime-core",
    "chime-cron",
    "chime-sql",
    "chime-sqlite",
    "chime-postgres",
    "chime-web",
    "chime-tasks",
    "chime-cli",
    "chime-scheduler",
    "chime-scheduler-cli",
    "chime-storetest",
    "tokio",
    "anyhow",
    "jiff",
];

/// Rust keywords: a package name is also the library's crate name.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
    "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become",
    "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// Why `name` cannot be the new crate's name, or `None` when it can.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > 64 {
        return Some(format!("the name has {} characters; crates.io allows at most 64", name.len()));
    }
    if let Some(bad) = name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-')) {
        let hint =
            if bad.is_ascii_uppercase() { format!(" (try \"{}\")", name.to_ascii_lowercase()) } else { String::new() };
        return Some(format!(
            "{bad:?} is not allowed: a crate name holds only lowercase letters a-z, digits, '-' and '_'{hint}"
        ));
    }
    let first = name.chars().next().expect("not empty");
    if first.is_ascii_digit() {
        return Some("a crate name cannot start with a digit (it is also the name of a Rust module)".into());
    }
    if !first.is_ascii_lowercase() {
        return Some(format!("a crate name starts with a letter, not {first:?}"));
    }
    if RESERVED.contains(&name) || RESERVED.contains(&name.replace('_', "-").as_str()) {
        return Some(format!(
            "{name:?} is reserved: it is the name of a standard or cargo directory, or of a crate the project depends on"
        ));
    }
    if KEYWORDS.contains(&name) {
        return Some(format!("{name:?} is a Rust keyword, and a crate name must be usable as a Rust identifier"));
    }
    None
}

/// The package name of chime's facade crate (its library is still `chime`).
const FACADE: &str = "chime-scheduler";

/// Whether `dir` is a chime checkout: it holds the facade crate, by its
/// package name (a `crates/chime` of another project is not one).
fn is_checkout(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("crates/chime/Cargo.toml"))
        .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == format!("name = \"{FACADE}\"")))
}

/// The chime checkout to depend on: `--chime-path`, else the one this binary
/// was built from when it is still there.
fn checkout(given: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(dir) = given {
        if !is_checkout(dir) {
            return Err(CliError::Usage(format!(
                "--chime-path {}: not a chime checkout (there is no crates/chime/Cargo.toml naming the package {FACADE:?} in it)",
                dir.display()
            )));
        }
        return std::fs::canonicalize(dir).map_err(|e| CliError::Usage(format!("--chime-path {}: {e}", dir.display())));
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if is_checkout(&built_from) {
        return std::fs::canonicalize(&built_from)
            .map_err(|e| CliError::Failed(anyhow::anyhow!("reading {}: {e}", built_from.display())));
    }
    Err(CliError::Usage(format!(
        "no chime checkout to depend on: this chime was built from {}, which is gone, and no --chime-path was given. \
         chime is not published on crates.io yet (the `chime` crate there is another project's), so the new project \
         must depend on a checkout: clone https://github.com/chime-rs/chime and pass --chime-path DIR",
        built_from.display()
    )))
}

/// One file the project gets: where, and what it holds.
struct File {
    path: &'static str,
    text: String,
}

/// The project's files for this name, store and checkout.
fn files(name: &str, store: InitStore, chime: &Path, lock: Option<String>) -> Vec<File> {
    let crate_name = name.replace('-', "_");
    let chime_root = chime.display().to_string();
    let (features, store_desc, store_open, store_env, store_readme, store_settings) = match store {
        InitStore::Memory => (
            r#""web", "tasks""#,
            "an in-memory store (jobs and history reset on restart)",
            "    Ok(builder.build())".to_owned(),
            "# In memory: jobs and their history reset on every restart (`chime init --store sqlite` keeps them).".to_owned(),
            "in memory: they and their history reset on every restart (the jobs come back from code)".to_owned(),
            String::new(),
        ),
        InitStore::Sqlite => (
            r#""sqlite", "web", "tasks""#,
            "SQLite (the file `CHIME_STORE` names, default `NAME.db`)",
            [
                "    let default = concat!(\"sqlite://\", env!(\"CARGO_PKG_NAME\"), \".db\");",
                "    let location = std::env::var(\"CHIME_STORE\").unwrap_or_else(|_| default.to_owned());",
                "    let store = chime::sqlite::SqliteStore::open(&location).await?;",
                "    Ok(builder.store(store).build())",
            ]
            .join("\n"),
            format!("CHIME_STORE=sqlite://{name}.db"),
            format!("in SQLite, in `{name}.db` (or the file `CHIME_STORE` names), and survive restarts"),
            ", `CHIME_STORE`".to_owned(),
        ),
        InitStore::Postgres => (
            r#""postgres", "web", "tasks""#,
            "PostgreSQL (the database `DATABASE_URL` names; several replicas share it)",
            [
                "    let url = std::env::var(\"DATABASE_URL\")",
                "        .map_err(|_| anyhow::anyhow!(\"set DATABASE_URL to the jobs' PostgreSQL database\"))?;",
                "    let store = chime::postgres::PostgresStore::connect(&url).await?;",
                "    Ok(builder.store(store).build())",
            ]
            .join("\n"),
            "DATABASE_URL=postgres://user:password@localhost/mydb".to_owned(),
            "in PostgreSQL (the database `DATABASE_URL` names), shared by every replica of the service: each scheduled \
             time runs once"
                .to_owned(),
            ", `DATABASE_URL`".to_owned(),
        ),
    };
    let store_desc = store_desc.replace("NAME", name);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{chime_path}}", &chime.join("crates/chime").display().to_string().replace('\\', "/"))
            .replace("{{chime_root}}", &chime_root)
            .replace("{{features}}", features)
            .replace("{{store_desc}}", &store_desc)
            .replace("{{store_open}}", &store_open)
            .replace("{{store_env}}", &store_env)
            .replace("{{store_readme}}", &store_readme)
            .replace("{{store_settings}}", &store_settings)
    };
    let mut files = vec![
        File { path: "Cargo.toml", text: fill(include_str!("../templates/init/Cargo.toml.in")) },
        File { path: "src/main.rs", text: fill(include_str!("../templates/init/main.rs.in")) },
        File { path: "src/lib.rs", text: fill(include_str!("../templates/init/lib.rs.in")) },
        File { path: "src/scheduler.rs", text: fill(include_str!("../templates/init/scheduler.rs.in")) },
        File { path: "src/services/mod.rs", text: fill(include_str!("../templates/init/services_mod.rs.in")) },
        File { path: "src/services/my_tasks.rs", text: fill(include_str!("../templates/init/my_tasks.rs.in")) },
        File { path: "tests/schedule.rs", text: fill(include_str!("../templates/init/schedule.rs.in")) },
        File { path: "Makefile", text: fill(include_str!("../templates/init/Makefile.in")) },
        File { path: "README.md", text: fill(include_str!("../templates/init/README.md.in")) },
        File { path: ".env.example", text: fill(include_str!("../templates/init/env.example.in")) },
        File { path: ".gitignore", text: fill(include_str!("../templates/init/gitignore.in")) },
    ];
    // The checkout's lock file: the versions chime is tested with, and a
    // project that builds offline where the checkout does.
    if let Some(lock) = lock {
        files.push(File { path: "Cargo.lock", text: lock });
    }
    files
}

pub(crate) fn run(args: InitArgs) -> Result<(), CliError> {
    let name = args.name.as_str();
    if let Some(problem) = name_problem(name) {
        return Err(CliError::Usage(format!("cannot name a project {name:?}: {problem}")));
    }
    let chime = checkout(args.chime_path.as_deref())?;
    let dir = Path::new(name);
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !args.force {
                return Err(CliError::Usage(format!(
                    "./{name} exists and is not empty: pick another name, or pass --force to write the project's \
                     files into it (files it does not write are left alone)"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if dir.exists() => {
            return Err(CliError::Usage(format!("./{name} exists and is not a folder")));
        }
        Err(e) => return Err(CliError::Failed(anyhow::anyhow!("reading ./{name}: {e}"))),
    }
    let lock = std::fs::read_to_string(chime.join("Cargo.lock")).ok();
    let files = files(name, args.store, &chime, lock);
    let mut written = Vec::new();
    for file in &files {
        let path = dir.join(file.path);
        let existed = path.exists();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::Failed(anyhow::anyhow!("creating {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, &file.text)
            .map_err(|e| CliError::Failed(anyhow::anyhow!("writing {}: {e}", path.display())))?;
        written.push((file.path, existed));
    }
    let store = match args.store {
        InitStore::Memory => "memory: jobs reset on restart",
        InitStore::Sqlite => "sqlite: jobs kept in a file",
        InitStore::Postgres => "postgres: jobs in the database DATABASE_URL names",
    };
    let mut out = format!("created {name} (store {store}; chime by path from {}):\n", chime.display());
    for (path, existed) in written {
        out.push_str(&format!("  {name}/{path}{}\n", if existed { " (overwritten)" } else { "" }));
    }
    out.push_str(&format!("next:\n  cd {name}\n  make serve\n"));
    use std::io::Write as _;
    std::io::stdout().write_all(out.as_bytes()).map_err(|_| CliError::StdoutClosed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_pass() {
        for name in ["my-app", "my_app", "app2", "a", "reports-service"] {
            assert_eq!(name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn invalid_names_say_why() {
        let why = |n: &str| name_problem(n).unwrap_or_else(|| panic!("{n:?} passed"));
        assert!(why("").contains("empty"));
        assert!(why("2fast").contains("start with a digit"));
        assert!(why("My-App").contains("lowercase") && why("My-App").contains("\"my-app\""));
        assert!(why("my app").contains("' '"));
        assert!(why("my.app").contains("'.'"));
        assert!(why("-app").contains("starts with a letter"));
        for reserved in ["test", "std", "core", "chime", "chime-core", "tokio", "proc_macro", "build"] {
            assert!(why(reserved).contains("reserved"), "{reserved}");
        }
        assert!(why("fn").contains("keyword"));
        assert!(why(&"a".repeat(65)).contains("64"));
    }

    #[test]
    fn every_template_placeholder_is_filled() {
        for store in [InitStore::Memory, InitStore::Sqlite, InitStore::Postgres] {
            for file in files("my-app", store, Path::new("/src/chime"), None) {
                assert!(!file.text.contains("{{"), "{} ({store:?}) keeps a placeholder", file.path);
            }
        }
    }

    #[test]
    fn the_manifest_depends_on_the_checkout_with_the_stores_feature() {
        let manifest = |store| {
            files("my-app", store, Path::new("/src/chime"), None)
                .into_iter()
                .find(|f| f.path == "Cargo.toml")
                .unwrap()
                .text
        };
        let memory = manifest(InitStore::Memory);
        assert!(memory.contains(
            r#"chime = { package = "chime-scheduler", path = "/src/chime/crates/chime", features = ["web", "tasks"] }"#
        ));
        assert!(memory.contains("\n[workspace]\n"));
        assert!(manifest(InitStore::Sqlite).contains(r#"features = ["sqlite", "web", "tasks"]"#));
        assert!(manifest(InitStore::Postgres).contains(r#"features = ["postgres", "web", "tasks"]"#));
    }

    #[test]
    fn a_path_that_is_not_a_checkout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = checkout(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("not a chime checkout"), "{err}");
    }

    /// The fenced blocks of `lang` in a markdown page, with the `## ` section each is in.
    fn blocks<'a>(page: &'a str, lang: &str) -> Vec<(&'a str, String)> {
        let (mut out, mut section, mut current): (Vec<(&str, String)>, &str, Option<String>) = (Vec::new(), "", None);
        for line in page.lines() {
            match &mut current {
                Some(text) if line == "```" => {
                    out.push((section, std::mem::take(text)));
                    current = None;
                }
                Some(text) => text.push_str(&format!("{line}\n")),
                None if line == format!("```{lang}") => current = Some(String::new()),
                None if line.starts_with("## ") => section = line,
                None => {}
            }
        }
        out
    }

    /// docs/examples.md: every config block is a config `chime serve` accepts,
    /// and each of its cron expressions has its fire times printed (and
    /// checked by tests/init.rs) in the same section.
    #[test]
    fn every_config_of_the_examples_page_parses_and_its_crons_are_previewed() {
        let page = include_str!("../../../docs/examples.md");
        let configs = blocks(page, "toml");
        assert!(configs.len() >= 8, "{} config blocks", configs.len());
        let consoles = blocks(page, "console");
        for (section, text) in &configs {
            let config = crate::config::parse(text, "docs/examples.md")
                .unwrap_or_else(|e| panic!("{section}: the config does not parse: {e}\n{text}"));
            assert!(!config.jobs.is_empty(), "{section}: no job");
            for line in text.lines().filter_map(|l| l.strip_prefix("cron = ")) {
                let command = format!("$ chime cron next {line} ");
                assert!(
                    consoles.iter().any(|(s, c)| s == section && c.contains(&command)),
                    "{section}: no `{command}...` for its cron"
                );
            }
        }
    }
}
