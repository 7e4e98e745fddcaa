//! Where the client commands write: text or JSON to stdout, notes to stderr.
//!
//! Output is built as one string and written at the end, so a failed request never leaves half a
//! table behind. A closed pipe (`kestrel traces --all | head`) ends the command quietly with
//! success, as other Unix tools do. ANSI styles are used only when stdout is a terminal.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Styles for text on stdout; all no-ops when stdout is not a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub enabled: bool,
}

impl Style {
    pub fn for_stdout() -> Style {
        Style {
            enabled: std::io::stdout().is_terminal(),
        }
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }

    pub fn cyan(self, text: &str) -> String {
        self.wrap("36", text)
    }
}

/// Writes `text` to stdout; a closed pipe is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot write to stdout: {e}")),
    }
}

/// Writes a value as indented JSON and a newline.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| anyhow::anyhow!("cannot encode the answer as JSON: {e}"))?;
    text.push('\n');
    print(&text)
}

/// A note for people on stderr (a hint, "no traces match"); never mixed into stdout, so `--json`
/// and pipes stay clean.
pub fn note(text: &str) {
    eprintln!("{text}");
}
