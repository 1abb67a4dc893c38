//! Reading an httpd configuration: lines (with `\` continuations and `#` comments),
//! arguments (quoted or bare), `<Section>` blocks, and `Include`/`IncludeOptional` (globs in
//! the last path component, relative to the including file's folder), into a tree of
//! [`Directive`]s that remember their file and line.

use std::path::{Path, PathBuf};

use super::ImportError;

/// One directive or section, where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Directive {
    /// The name as written (`ProxyPass`, `VirtualHost`…).
    pub name: String,
    /// Its arguments, unquoted.
    pub args: Vec<String>,
    /// For a section, what it holds.
    pub children: Vec<Directive>,
    /// Whether it is a `<Section>`.
    pub section: bool,
    /// The file it came from.
    pub file: PathBuf,
    /// Its line (the first, for a continued one).
    pub line: usize,
}

impl Directive {
    /// `file:line` for messages.
    pub(crate) fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// Whether it is named `name` (directive names are case-insensitive in httpd).
    pub(crate) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Includes followed at most this deep (a loop of includes is an error, not a hang).
const MAX_DEPTH: usize = 16;

/// Reads `path` and everything it includes.
pub(crate) fn read(path: &Path) -> Result<Vec<Directive>, ImportError> {
    read_file(path, 0, &mut None)
}

/// `server_root` is the last `ServerRoot` seen: httpd resolves a relative `Include` against
/// it; without one, against the including file's folder.
fn read_file(path: &Path, depth: usize, server_root: &mut Option<PathBuf>) -> Result<Vec<Directive>, ImportError> {
    if depth > MAX_DEPTH {
        return Err(ImportError::Syntax { at: path.display().to_string(), reason: format!("includes nested deeper than {MAX_DEPTH} (a loop?)") });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read { path: path.to_path_buf(), source })?;
    let lines = logical_lines(&text);
    let mut stack: Vec<Directive> = vec![Directive { name: String::new(), args: Vec::new(), children: Vec::new(), section: true, file: path.to_path_buf(), line: 0 }];
    for (line, content) in lines {
        let at = || format!("{}:{line}", path.display());
        if let Some(close) = content.strip_prefix("</") {
            let name = close.trim_end_matches('>').trim();
            let Some(open) = stack.pop() else { break };
            if stack.is_empty() || !open.name.eq_ignore_ascii_case(name) {
                return Err(ImportError::Syntax { at: at(), reason: format!("</{name}> closes <{}>", open.name) });
            }
            if let Some(parent) = stack.last_mut() {
                parent.children.push(open);
            }
            continue;
        }
        if let Some(open) = content.strip_prefix('<') {
            let Some(inner) = open.strip_suffix('>') else {
                return Err(ImportError::Syntax { at: at(), reason: "a section line must end with `>`".into() });
            };
            let mut words = split_args(inner).map_err(|reason| ImportError::Syntax { at: at(), reason })?;
            if words.is_empty() {
                return Err(ImportError::Syntax { at: at(), reason: "an empty section".into() });
            }
            let name = words.remove(0);
            stack.push(Directive { name, args: words, children: Vec::new(), section: true, file: path.to_path_buf(), line });
            continue;
        }
        let mut words = split_args(&content).map_err(|reason| ImportError::Syntax { at: at(), reason })?;
        let name = words.remove(0);
        if name.eq_ignore_ascii_case("ServerRoot")
            && let Some(root) = words.first()
        {
            *server_root = Some(path.parent().unwrap_or(Path::new(".")).join(root));
        }
        if name.eq_ignore_ascii_case("Include") || name.eq_ignore_ascii_case("IncludeOptional") {
            let optional = name.eq_ignore_ascii_case("IncludeOptional");
            let Some(pattern) = words.first() else {
                return Err(ImportError::Syntax { at: at(), reason: format!("{name} needs a path") });
            };
            let here = path.parent().unwrap_or(Path::new("."));
            let files = match server_root.as_deref().map(|root| expand(&root.join(pattern))) {
                Some(found) if !found.is_empty() => found,
                _ => expand(&here.join(pattern)),
            };
            if files.is_empty() && !optional && !pattern.contains('*') && !pattern.contains('?') {
                return Err(ImportError::Syntax { at: at(), reason: format!("{name} {pattern}: no such file") });
            }
            for file in files {
                let included = read_file(&file, depth + 1, server_root)?;
                if let Some(parent) = stack.last_mut() {
                    parent.children.extend(included);
                }
            }
            continue;
        }
        if let Some(parent) = stack.last_mut() {
            parent.children.push(Directive { name, args: words, children: Vec::new(), section: false, file: path.to_path_buf(), line });
        }
    }
    if stack.len() > 1 {
        let open = &stack[stack.len() - 1];
        return Err(ImportError::Syntax { at: open.at(), reason: format!("<{}> is never closed", open.name) });
    }
    Ok(stack.pop().map(|root| root.children).unwrap_or_default())
}

/// The file's directive lines, trimmed, with continuations joined and comments dropped, each
/// with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            joined.push_str(body);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(line);
        let joined = joined.trim().to_string();
        if joined.is_empty() || joined.starts_with('#') {
            continue;
        }
        out.push((start, joined));
    }
    if let Some((start, joined)) = pending {
        let joined = joined.trim().to_string();
        if !joined.is_empty() && !joined.starts_with('#') {
            out.push((start, joined));
        }
    }
    out
}

/// Splits a directive's arguments: whitespace-separated, `"…"` or `'…'` quoting (with `\"`
/// inside), and `{…}` kept whole (ProxyHCExpr's expression).
pub(crate) fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        match c {
            '"' | '\'' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some('\\') if chars.peek() == Some(&c) => {
                            chars.next();
                            word.push(c);
                        }
                        Some(ch) if ch == c => break,
                        Some(ch) => word.push(ch),
                        None => return Err(format!("an unclosed {c}")),
                    }
                }
            }
            '{' => {
                let mut depth = 0;
                for ch in chars.by_ref() {
                    match ch {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    word.push(ch);
                    if depth == 0 {
                        break;
                    }
                }
                if depth != 0 {
                    return Err("an unclosed {".into());
                }
            }
            _ => {
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() {
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
            }
        }
        out.push(word);
    }
    Ok(out)
}

/// The files a path names: itself, or, with `*`/`?` in its last component, the matching
/// files of its folder in name order (as httpd includes them).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains('*') && !name.contains('?') {
        if pattern.is_dir() {
            // httpd includes every file of a folder (and its subfolders), in name order.
            let mut files = Vec::new();
            let mut entries: Vec<PathBuf> = std::fs::read_dir(pattern).map(|e| e.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
            entries.sort();
            for entry in entries {
                files.extend(expand(&entry));
            }
            return files;
        }
        return if pattern.is_file() { vec![pattern.to_path_buf()] } else { Vec::new() };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| glob_match(&name, &n.to_string_lossy())));
    files.sort();
    files
}

/// `*` and `?` matching, as a shell does for one path component.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_quoted_bare_and_braced() {
        assert_eq!(split_args(r#"ProxyPass "/a b" http://x/ timeout=1"#).expect("ok"), ["ProxyPass", "/a b", "http://x/", "timeout=1"]);
        assert_eq!(split_args(r#"ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^[234]/}"#).expect("ok"), ["ProxyHCExpr", "ok", "{%{REQUEST_STATUS} =~ /^[234]/}"]);
        assert!(split_args(r#"X "open"#).is_err());
        assert_eq!(split_args(r#"LogFormat "%h \"%r\" %>s" nick"#).expect("ok"), ["LogFormat", r#"%h "%r" %>s"#, "nick"]);
    }

    #[test]
    fn continuations_and_comments() {
        let lines = logical_lines("# c\nProxyPass /a \\\n   http://b/\n\n  Listen 80 # not a comment in httpd\n");
        assert_eq!(lines, [(2, "ProxyPass /a  http://b/".to_string()), (5, "Listen 80 # not a comment in httpd".to_string())]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "a.conf"));
        assert!(!glob_match("*.conf", "a.conf.bak"));
        assert!(glob_match("site-?.conf", "site-1.conf"));
    }
}
