//! Filters that choose which cookies a jar keeps, by name.

use std::{fmt, sync::Arc};

/// Chooses which cookies a jar keeps, by name.
///
/// A cookie that the filter does not accept is neither stored nor replayed,
/// and the jar counts it as [`RejectReason::Filtered`](crate::RejectReason::Filtered).
/// A jar without a filter keeps every cookie.
///
/// Keeping only the balancer's cookies leaves application sessions and
/// tracking cookies out of a client that only needs to stay on one backend:
///
/// ```
/// use tower_sticky::{MemoryJar, jar::CookieFilter};
///
/// let jar = MemoryJar::builder()
///     .filter(CookieFilter::load_balancers())
///     .build();
/// # let _ = jar;
/// ```
///
/// AWS ALB application-based stickiness pairs `AWSALBAPP-*` with the
/// application's own cookie, which has to be kept too:
///
/// ```
/// use tower_sticky::jar::CookieFilter;
///
/// let filter = CookieFilter::aws_alb().or(CookieFilter::allow(["JSESSIONID"]));
/// assert!(filter.accepts(b"AWSALBAPP-0"));
/// assert!(filter.accepts(b"JSESSIONID"));
/// assert!(!filter.accepts(b"_ga"));
/// ```
#[derive(Clone)]
pub struct CookieFilter {
    rule: Rule,
}

type NamePredicate = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

#[derive(Clone)]
enum Rule {
    Allow(Names),
    Deny(Names),
    Predicate(NamePredicate),
    Either(Box<Rule>, Box<Rule>),
}

/// Cookie names, matched exactly (case-sensitive, as cookie names are), by
/// prefix, or as Traefik's generated default name.
#[derive(Clone, Default)]
struct Names {
    exact: Vec<Box<[u8]>>,
    prefixes: Vec<Box<[u8]>>,
    traefik_default: bool,
}

impl Names {
    fn exact<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        Names {
            exact: names.into_iter().map(|name| name.as_ref().into()).collect(),
            ..Names::default()
        }
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.exact.iter().any(|exact| **exact == *name)
            || self.prefixes.iter().any(|prefix| name.starts_with(prefix))
            || (self.traefik_default && is_traefik_default_name(name))
    }
}

/// Traefik names its sticky cookie `_` followed by the first 5 hex digits of
/// a hash of the router name, when the configuration sets no name.
fn is_traefik_default_name(name: &[u8]) -> bool {
    matches!(name, [b'_', rest @ ..] if rest.len() == 5 && rest.iter().all(u8::is_ascii_hexdigit))
}

impl Rule {
    fn accepts(&self, name: &[u8]) -> bool {
        match self {
            Rule::Allow(names) => names.contains(name),
            Rule::Deny(names) => !names.contains(name),
            Rule::Predicate(predicate) => predicate(name),
            Rule::Either(first, second) => first.accepts(name) || second.accepts(name),
        }
    }
}

impl CookieFilter {
    /// Keeps only cookies with one of these names.
    pub fn allow<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        CookieFilter {
            rule: Rule::Allow(Names::exact(names)),
        }
    }

    /// Keeps every cookie except those with one of these names.
    pub fn deny<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        CookieFilter {
            rule: Rule::Deny(Names::exact(names)),
        }
    }

    /// Keeps the cookies whose name the predicate accepts.
    pub fn from_fn<F>(predicate: F) -> Self
    where
        F: Fn(&[u8]) -> bool + Send + Sync + 'static,
    {
        CookieFilter {
            rule: Rule::Predicate(Arc::new(predicate)),
        }
    }

    /// Keeps the cookies that either filter keeps.
    pub fn or(self, other: CookieFilter) -> Self {
        CookieFilter {
            rule: Rule::Either(Box::new(self.rule), Box::new(other.rule)),
        }
    }

    /// Returns whether a cookie with this name passes the filter.
    pub fn accepts(&self, name: &[u8]) -> bool {
        self.rule.accepts(name)
    }

    /// Keeps the cookies of AWS Application Load Balancer: `AWSALB` and
    /// `AWSALBCORS` (duration-based stickiness), `AWSALBAPP` and
    /// `AWSALBAPP-*` (application-based stickiness), `AWSALBTG` and
    /// `AWSALBTGCORS` (target-group stickiness).
    ///
    /// Application-based stickiness also needs the application's own cookie:
    /// add it with [`CookieFilter::or`].
    pub fn aws_alb() -> Self {
        let mut names = Names::exact([
            "AWSALB",
            "AWSALBCORS",
            "AWSALBAPP",
            "AWSALBTG",
            "AWSALBTGCORS",
        ]);
        names.prefixes.push(Box::from(&b"AWSALBAPP-"[..]));
        CookieFilter {
            rule: Rule::Allow(names),
        }
    }

    /// Keeps the cookies of the classic AWS Elastic Load Balancer: `AWSELB`
    /// and `AWSELBCORS`.
    pub fn aws_elb() -> Self {
        CookieFilter::allow(["AWSELB", "AWSELBCORS"])
    }

    /// Keeps ingress-nginx's default affinity cookie, `INGRESSCOOKIE`.
    pub fn ingress_nginx() -> Self {
        CookieFilter::allow(["INGRESSCOOKIE"])
    }

    /// Keeps the cookie names HAProxy configurations use most: `SERVERID` and
    /// `SRV`. HAProxy takes its cookie name from the `cookie` directive, so
    /// add other names with [`CookieFilter::or`].
    pub fn haproxy() -> Self {
        CookieFilter::allow(["SERVERID", "SRV"])
    }

    /// Keeps the `route` cookie of nginx's sticky modules.
    pub fn nginx_sticky() -> Self {
        CookieFilter::allow(["route"])
    }

    /// Keeps the cookie of DigitalOcean load balancers, `DO-LB`.
    pub fn digitalocean() -> Self {
        CookieFilter::allow(["DO-LB"])
    }

    /// Keeps Traefik's default sticky cookie: `_` followed by 5 hex digits.
    pub fn traefik() -> Self {
        CookieFilter {
            rule: Rule::Allow(Names {
                traefik_default: true,
                ..Names::default()
            }),
        }
    }

    /// Keeps the cookies of every load-balancer preset of this type.
    pub fn load_balancers() -> Self {
        CookieFilter::aws_alb()
            .or(CookieFilter::aws_elb())
            .or(CookieFilter::ingress_nginx())
            .or(CookieFilter::haproxy())
            .or(CookieFilter::nginx_sticky())
            .or(CookieFilter::digitalocean())
            .or(CookieFilter::traefik())
    }
}

impl fmt::Debug for CookieFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn write_rule(rule: &Rule, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match rule {
                Rule::Allow(names) => write!(f, "allow({})", NamesDebug(names)),
                Rule::Deny(names) => write!(f, "deny({})", NamesDebug(names)),
                Rule::Predicate(_) => f.write_str("from_fn(..)"),
                Rule::Either(first, second) => {
                    write_rule(first, f)?;
                    f.write_str(" or ")?;
                    write_rule(second, f)
                }
            }
        }
        f.write_str("CookieFilter(")?;
        write_rule(&self.rule, f)?;
        f.write_str(")")
    }
}

struct NamesDebug<'a>(&'a Names);

impl fmt::Display for NamesDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut separator = |f: &mut fmt::Formatter<'_>| {
            let result = if first { Ok(()) } else { f.write_str(", ") };
            first = false;
            result
        };
        for name in &self.0.exact {
            separator(f)?;
            write!(f, "{}", name.escape_ascii())?;
        }
        for prefix in &self.0.prefixes {
            separator(f)?;
            write!(f, "{}*", prefix.escape_ascii())?;
        }
        if self.0.traefik_default {
            separator(f)?;
            f.write_str("_<5 hex digits>")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_is_exact_and_case_sensitive() {
        let filter = CookieFilter::allow(["SRV"]);
        assert!(filter.accepts(b"SRV"));
        assert!(!filter.accepts(b"srv"));
        assert!(!filter.accepts(b"SRV2"));
    }

    #[test]
    fn deny_keeps_others() {
        let filter = CookieFilter::deny(["_ga"]);
        assert!(!filter.accepts(b"_ga"));
        assert!(filter.accepts(b"AWSALB"));
    }

    #[test]
    fn predicate_decides() {
        let filter = CookieFilter::from_fn(|name| name.starts_with(b"lb_"));
        assert!(filter.accepts(b"lb_1"));
        assert!(!filter.accepts(b"session"));
    }

    #[test]
    fn aws_alb_preset() {
        let filter = CookieFilter::aws_alb();
        for name in [
            "AWSALB",
            "AWSALBCORS",
            "AWSALBAPP",
            "AWSALBAPP-0",
            "AWSALBAPP-3",
            "AWSALBTG",
            "AWSALBTGCORS",
        ] {
            assert!(filter.accepts(name.as_bytes()), "{name}");
        }
        assert!(!filter.accepts(b"AWSALBX"));
        assert!(!filter.accepts(b"AWSELB"));
    }

    #[test]
    fn single_name_presets() {
        let cases = [
            (CookieFilter::aws_elb(), &["AWSELB", "AWSELBCORS"][..]),
            (CookieFilter::ingress_nginx(), &["INGRESSCOOKIE"][..]),
            (CookieFilter::haproxy(), &["SERVERID", "SRV"][..]),
            (CookieFilter::nginx_sticky(), &["route"][..]),
            (CookieFilter::digitalocean(), &["DO-LB"][..]),
        ];
        for (filter, names) in cases {
            for name in names {
                assert!(filter.accepts(name.as_bytes()), "{filter:?} rejects {name}");
            }
            assert!(!filter.accepts(b"session"), "{filter:?} accepts session");
        }
    }

    #[test]
    fn traefik_preset() {
        let filter = CookieFilter::traefik();
        assert!(filter.accepts(b"_a1b2c"));
        assert!(filter.accepts(b"_ABCDE"));
        assert!(!filter.accepts(b"_a1b2"));
        assert!(!filter.accepts(b"_a1b2c3"));
        assert!(!filter.accepts(b"_ghijk"));
        assert!(!filter.accepts(b"xa1b2c"));
    }

    #[test]
    fn load_balancers_covers_presets() {
        let filter = CookieFilter::load_balancers();
        for name in [
            "AWSALB",
            "AWSALBAPP-1",
            "AWSELB",
            "INGRESSCOOKIE",
            "SERVERID",
            "SRV",
            "route",
            "DO-LB",
            "_0f3a9",
        ] {
            assert!(filter.accepts(name.as_bytes()), "{name}");
        }
        assert!(!filter.accepts(b"JSESSIONID"));
    }

    #[test]
    fn or_adds_application_cookie() {
        let filter = CookieFilter::aws_alb().or(CookieFilter::allow(["JSESSIONID"]));
        assert!(filter.accepts(b"JSESSIONID"));
        assert!(filter.accepts(b"AWSALBAPP-0"));
        assert!(!filter.accepts(b"PHPSESSID"));
    }

    #[test]
    fn debug_lists_names() {
        let shown = format!("{:?}", CookieFilter::aws_alb());
        assert!(shown.contains("AWSALBAPP-*"), "{shown}");
    }
}
