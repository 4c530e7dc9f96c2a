//! The command lines a document shows, so tests can check every example in the guides against
//! the binaries' real grammar (a renamed flag then fails a test, not a reader).

/// Every command line of `binary` in the fenced code blocks of a Markdown `text`, as argv (the
/// binary first). A shell prompt (`$ `) is dropped and continuation lines (`\`) are joined;
/// commands chained with `&&` are each one line; a `#` comment, a redirection (`<`, `>`) or a
/// pipe ends the line; optional parts written `[LIKE-THIS]` are dropped and an elided value (`…`)
/// becomes `x`.
pub fn command_lines(text: &str, binary: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            pending.clear();
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.trim();
        let line = line.strip_prefix("$ ").unwrap_or(line);
        if pending.is_empty() && !line.starts_with(binary) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let joined = std::mem::take(&mut pending);
        for part in joined.split("&&").map(str::trim) {
            if part.starts_with(binary) {
                out.push(split(part));
            }
        }
    }
    out
}

/// The guides whose examples the binaries' tests parse: the README, the operator guide and the
/// vendor guide, as compiled in.
pub const GUIDES: [(&str, &str); 3] = [
    ("README.md", include_str!("../../../README.md")),
    (
        "docs/operator-guide.md",
        include_str!("../../../docs/operator-guide.md"),
    ),
    (
        "docs/vendor-guide.md",
        include_str!("../../../docs/vendor-guide.md"),
    ),
];

/// Parses every `binary` example of [`GUIDES`] with the grammar `P`: how many were parsed, or
/// the first that does not parse (`--help` and `--version` examples count as parsed).
pub fn parse_examples<P: clap::Parser>(binary: &str) -> Result<usize, String> {
    let mut seen = 0;
    for (name, text) in GUIDES {
        for argv in command_lines(text, binary) {
            seen += 1;
            if let Err(e) = P::try_parse_from(&argv) {
                if !matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) {
                    return Err(format!("{name}: `{}` does not parse:\n{e}", argv.join(" ")));
                }
            }
        }
    }
    Ok(seen)
}

/// Shell-like words of one line, stopping at a comment, redirection or pipe.
fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut has_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has_word = true;
            }
            None if c.is_whitespace() => {
                if has_word || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    has_word = false;
                }
            }
            None if matches!(c, '#' | '<' | '>' | '|') && word.is_empty() => break,
            None => word.push(c),
        }
    }
    if has_word || !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter(|w| !(w.starts_with('[') && w.ends_with(']')))
        .map(|w| if w == "…" { "x".to_string() } else { w })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::command_lines;

    #[test]
    fn reads_commands_from_code_blocks_only() {
        let doc = "airlift-install not-in-code\n\n```sh\nairlift-install install b.airlift --key k \\\n  --values 'my site.yaml' < pass   # comment\nairlift-install rollback demo [REVISION]\nairlift-install plan b --kubeconfig …\nkubectl get pods\n```\n```console\n$ airlift-install list && airlift-install status demo\nRelease demo …\n```\n";
        assert_eq!(
            command_lines(doc, "airlift-install"),
            vec![
                vec![
                    "airlift-install",
                    "install",
                    "b.airlift",
                    "--key",
                    "k",
                    "--values",
                    "my site.yaml"
                ],
                vec!["airlift-install", "rollback", "demo"],
                vec!["airlift-install", "plan", "b", "--kubeconfig", "x"],
                vec!["airlift-install", "list"],
                vec!["airlift-install", "status", "demo"],
            ]
        );
    }
}
