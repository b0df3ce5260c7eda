//! `process.exec` patterns: which executables may be started.
//!
//! - An absolute glob: `*` matches within one path segment (never `/`), `**` matches
//!   any number of whole segments, zero included (`/usr/**` matches `/usr/bin/ls`).
//! - `sandbox:<glob>`: the same, relative to the task's sandbox dir.
//! - `**` alone: anything, absolute or in the sandbox.
//!
//! Paths are compared segment by segment after dropping empty and `.` segments; a
//! `..` segment is an error in a pattern and never matches in a candidate (callers
//! pass the canonical path too). Owns parsing, matching and the coverage and
//! disjointness tests `describe` uses; knows nothing about requests or grants.

/// A parsed `process.exec` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExecPattern {
    /// `**` alone.
    Any,
    /// An absolute glob, by segment.
    Abs(Vec<String>),
    /// `sandbox:<glob>`, by segment.
    Sandbox(Vec<String>),
}

const DEEP: &str = "**";

impl ExecPattern {
    /// Parses a pattern; the error says what is wrong and shows a right one.
    pub(super) fn parse(text: &str) -> Result<ExecPattern, String> {
        if text == DEEP {
            return Ok(ExecPattern::Any);
        }
        if let Some(rel) = text.strip_prefix("sandbox:") {
            if rel.starts_with('/') {
                let fixed = format!("sandbox:{}", rel.trim_start_matches('/'));
                return Err(format!(
                    "pattern {text:?}: paths after \"sandbox:\" are relative to the task's sandbox; write {fixed:?}"
                ));
            }
            let segments = segments(rel, text)?;
            if segments.is_empty() {
                return Err(format!(
                    "pattern {text:?} names no file; e.g. \"sandbox:bin/*\", or \"sandbox:**\" for anything in the \
                     task's sandbox"
                ));
            }
            return Ok(ExecPattern::Sandbox(segments));
        }
        if text.is_empty() {
            return Err("pattern is empty; e.g. \"/usr/bin/*\"".to_string());
        }
        if !text.starts_with('/') {
            let rel = segments(text, text)?.join("/");
            return Err(format!(
                "pattern {text:?} is not absolute; write \"/{rel}\", or \"sandbox:{rel}\" for a path in the task's \
                 sandbox"
            ));
        }
        Ok(ExecPattern::Abs(segments(text, text)?))
    }

    /// Whether `candidate` (an absolute path or `sandbox:<rel>`) matches.
    pub(super) fn matches(&self, candidate: &str) -> bool {
        let Some((in_sandbox, path)) = candidate_segments(candidate) else {
            return false;
        };
        match self {
            ExecPattern::Any => true,
            ExecPattern::Abs(pattern) => !in_sandbox && match_segments(pattern, &path),
            ExecPattern::Sandbox(pattern) => in_sandbox && match_segments(pattern, &path),
        }
    }

    /// Whether every path `other` matches, `self` matches too (sound, not complete:
    /// `false` may mean "could not tell").
    pub(super) fn covers(&self, other: &ExecPattern) -> bool {
        match (self, other) {
            (ExecPattern::Any, _) => true,
            (ExecPattern::Abs(a), ExecPattern::Abs(b)) | (ExecPattern::Sandbox(a), ExecPattern::Sandbox(b)) => {
                wildcard(a, b, |s| s == DEEP, |p, t| t != DEEP && segment_covers(p, t))
            }
            _ => false,
        }
    }

    /// Whether no path matches both (sound, not complete: `false` may mean "could
    /// not tell"). Compares leading segments up to the first `**`.
    pub(super) fn disjoint(&self, other: &ExecPattern) -> bool {
        match (self, other) {
            (ExecPattern::Any, _) | (_, ExecPattern::Any) => false,
            (ExecPattern::Abs(a), ExecPattern::Abs(b)) | (ExecPattern::Sandbox(a), ExecPattern::Sandbox(b)) => {
                let mut i = 0;
                loop {
                    let (p, q) = (a.get(i), b.get(i));
                    if p.is_some_and(|p| p == DEEP) || q.is_some_and(|q| q == DEEP) {
                        return false;
                    }
                    match (p, q) {
                        (None, None) => return false,
                        (Some(p), Some(q)) if segments_may_overlap(p, q) => i += 1,
                        // One path is longer, or a segment cannot match both.
                        _ => return true,
                    }
                }
            }
            _ => true,
        }
    }
}

/// Splits a pattern path into segments, refusing `..` and `**` inside a segment.
fn segments(path: &str, text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." {
            return Err(format!(
                "pattern {text:?} has a \"..\" segment; name the directory itself, e.g. \"/usr/bin/*\""
            ));
        }
        if segment.contains(DEEP) && segment != DEEP {
            let whole = text.replace(segment, DEEP);
            let within = text.replace(segment, &segment.replace(DEEP, "*"));
            return Err(format!(
                "pattern {text:?} has \"**\" inside a segment; \"**\" stands for whole segments ({whole:?}), \
                 \"*\" matches within one ({within:?})"
            ));
        }
        out.push(segment.to_string());
    }
    Ok(out)
}

/// A candidate's kind (`true` = in the sandbox) and segments; `None` for a
/// relative path or one with `..`.
fn candidate_segments(candidate: &str) -> Option<(bool, Vec<&str>)> {
    let (in_sandbox, path) = match candidate.strip_prefix("sandbox:") {
        Some(rel) if !rel.starts_with('/') => (true, rel),
        Some(_) => return None,
        None if candidate.starts_with('/') => (false, candidate),
        None => return None,
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    if segments.contains(&"..") || (in_sandbox && segments.is_empty()) {
        return None;
    }
    Some((in_sandbox, segments))
}

fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    wildcard(
        pattern,
        path,
        |s| s == DEEP,
        |p, t| wildcard(p.as_bytes(), t.as_bytes(), |c| *c == b'*', |a, b| a == b),
    )
}

/// Whether segment glob `p` matches every name segment glob `q` matches.
fn segment_covers(p: &str, q: &str) -> bool {
    // A `*` in `q` stands for any text, so only a `*` in `p` can take it.
    wildcard(p.as_bytes(), q.as_bytes(), |c| *c == b'*', |a, b| a == b && *b != b'*')
}

fn segments_may_overlap(p: &str, q: &str) -> bool {
    let single = |glob: &str, name: &str| wildcard(glob.as_bytes(), name.as_bytes(), |c| *c == b'*', |a, b| a == b);
    match (p.contains('*'), q.contains('*')) {
        (false, _) => single(q, p),
        (_, false) => single(p, q),
        _ => true,
    }
}

/// Wildcard matching of `pattern` against `text`: items for which `is_star` holds
/// match any run of items (empty included), every other item matches one item for
/// which `eq` holds. Greedy with backtracking to the last star: O(len²) at worst.
pub(super) fn wildcard<P, U>(
    pattern: &[P],
    text: &[U],
    is_star: impl Fn(&P) -> bool,
    eq: impl Fn(&P, &U) -> bool,
) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && is_star(&pattern[p]) {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && eq(&pattern[p], &text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(is_star)
}

#[cfg(test)]
mod tests;
