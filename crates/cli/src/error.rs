use std::fmt;
use std::process::ExitCode;

/// A failed command and the exit code it maps to. Today every failure is the
/// user's input (exit 2, as clap uses for bad flags); operations that can fail
/// on their own (exit 1) arrive with `chime serve` and `chime jobs`.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The input is invalid: a bad expression, zone or instant.
    Usage(String),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) => f.write_str(message),
        }
    }
}
