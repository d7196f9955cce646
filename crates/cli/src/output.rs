//! A command's answer on stdout. A reader that stopped early (`chime history
//! | head -1`) ends the command quietly, with exit 0, instead of a panic.

use std::fmt;
use std::io::Write as _;

use crate::error::CliError;

/// Writes `text` to stdout: `CliError::StdoutClosed` when the reader is gone.
pub(crate) fn write(text: fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::StdoutClosed),
        Err(e) => Err(CliError::Failed(anyhow::anyhow!("writing to stdout: {e}"))),
    }
}

/// `println!` for a command's answer; returns from the command when stdout is closed.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` for a command's answer; returns from the command when stdout is closed.
macro_rules! out_raw {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))?
    };
}

pub(crate) use {out, out_raw};
