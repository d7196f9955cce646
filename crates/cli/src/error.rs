use std::fmt;
use std::process::ExitCode;

/// A failed command, with the exit code it maps to: 2 when the user's input
/// is wrong (as clap does for flags), 1 when a valid operation failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The input is invalid: a bad expression, zone, instant or config file.
    Usage(String),
    /// The operation was valid but failed: an unknown job id, an unreachable store.
    Failed(anyhow::Error),
    /// Whoever read the output stopped reading (`| head`): not a failure.
    StdoutClosed,
}

impl CliError {
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
            CliError::StdoutClosed => ExitCode::SUCCESS,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) => f.write_str(message),
            // `{:#}` prints the whole anyhow context chain on one line.
            CliError::Failed(err) => write!(f, "{err:#}"),
            CliError::StdoutClosed => f.write_str("stdout was closed"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}
