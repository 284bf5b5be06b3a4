//! Reading secrets: hidden prompt on a terminal, one line per secret from
//! standard input otherwise (scripts, tests).

use std::io::{BufRead, IsTerminal, Write};

pub fn secret(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        Ok(rpassword::prompt_password(prompt)?)
    } else {
        line(prompt)
    }
}

pub fn line(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut s = String::new();
    if std::io::stdin().lock().read_line(&mut s)? == 0 {
        anyhow::bail!("no input for: {}", prompt.trim_end_matches([':', ' ']));
    }
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

/// The first line of standard input, without prompting (terminal or not).
pub fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut s = String::new();
    if std::io::stdin().lock().read_line(&mut s)? == 0 {
        anyhow::bail!("no input for {what} on standard input");
    }
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}
