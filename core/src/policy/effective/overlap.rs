//! Pattern lists of request ∩ grant for people, without a pattern algebra: a grant
//! pattern is kept when some request pattern covers it entirely, a request pattern
//! when some grant pattern covers it, and any other pair that may overlap is shown
//! as `A ∩ B` (or as one pattern where that is easy, e.g. `*:80` ∩ `10.0.0.0/8:*`
//! = `10.0.0.0/8:80`). Coverage and overlap come from the pattern modules and are
//! sound but not complete, so an unsure pair is shown rather than dropped.
//!
//! Used by `describe` only; checks never go through here.

use super::super::endpoint::ListenPattern;
use super::super::exec::ExecPattern;
use super::super::net::NetPattern;
use super::super::unix_socket::SocketPattern;
use super::Named;

/// Coverage and overlap tests, for the effective lists.
pub(super) trait Pattern {
    /// Everything `other` matches, `self` matches (sound; `false` if unsure).
    fn covers(&self, other: &Self) -> bool;
    /// Nothing matches both (sound; `false` if unsure).
    fn disjoint(&self, other: &Self) -> bool;
    /// The intersection written as one pattern, where that is easy.
    fn meet(&self, _other: &Self, _self_text: &str, _other_text: &str) -> Option<String> {
        None
    }
}

impl Pattern for ExecPattern {
    fn covers(&self, other: &Self) -> bool {
        ExecPattern::covers(self, other)
    }
    fn disjoint(&self, other: &Self) -> bool {
        ExecPattern::disjoint(self, other)
    }
}

impl Pattern for NetPattern {
    fn covers(&self, other: &Self) -> bool {
        NetPattern::covers(self, other)
    }
    fn disjoint(&self, other: &Self) -> bool {
        NetPattern::disjoint(self, other)
    }
    fn meet(&self, other: &Self, self_text: &str, other_text: &str) -> Option<String> {
        NetPattern::meet(self, other, self_text, other_text)
    }
}

impl Pattern for SocketPattern {
    fn covers(&self, other: &Self) -> bool {
        SocketPattern::covers(self, other)
    }
    fn disjoint(&self, other: &Self) -> bool {
        !self.covers(other) && !other.covers(self)
    }
}

impl Pattern for ListenPattern {
    fn covers(&self, other: &Self) -> bool {
        ListenPattern::covers(self, other)
    }
    fn disjoint(&self, other: &Self) -> bool {
        ListenPattern::disjoint(self, other)
    }
}

/// The effective list: kept grant patterns, kept request patterns, then `A ∩ B`.
pub(super) fn effective<P: Pattern>(req: &[Named<P>], grant: &[Named<P>]) -> Vec<String> {
    let covered = |p: &Named<P>, by: &[Named<P>]| by.iter().any(|b| b.pattern.covers(&p.pattern));
    let kept_grant: Vec<&Named<P>> = grant.iter().filter(|g| covered(g, req)).collect();
    let kept_req: Vec<&Named<P>> = req.iter().filter(|r| covered(r, grant)).collect();
    let mut out: Vec<String> = kept_grant
        .iter()
        .chain(&kept_req)
        .map(|p| format!("{:?}", p.text))
        .collect();
    for r in req.iter().filter(|r| !covered(r, grant)) {
        for g in grant
            .iter()
            .filter(|g| !covered(g, req) && !r.pattern.disjoint(&g.pattern))
        {
            let meet = r.pattern.meet(&g.pattern, &r.text, &g.text);
            out.push(meet.map_or_else(|| format!("{:?} ∩ {:?}", r.text, g.text), |m| format!("{m:?}")));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

/// Request patterns that contribute nothing to the effective list.
pub(super) fn ungranted<'a, P: Pattern>(req: &'a [Named<P>], grant: &[Named<P>]) -> Vec<&'a str> {
    let contributes = |r: &Named<P>| grant.iter().any(|g| !r.pattern.disjoint(&g.pattern));
    req.iter()
        .filter(|r| !contributes(r))
        .map(|r| r.text.as_str())
        .collect()
}
