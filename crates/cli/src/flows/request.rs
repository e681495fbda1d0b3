//! The `GetFlowsRequest` for the selector flags, with `hubble observe`'s
//! rules: `--first`, `--last` and `--all` exclude each other (and `--first`
//! excludes `--follow`); `--until` only without `--follow`; with no
//! selector at all, the last 20 flows.

use hubble::proto::observer::GetFlowsRequest;
use hubble::timestamp::Timestamp;

use super::filter::FilterFlags;
use super::since::parse_time;

/// Hubble's default for a plain `hubble observe`.
pub const DEFAULT_LAST: u64 = 20;

#[derive(Debug, Default, Clone)]
pub struct Selector {
    pub follow: bool,
    pub last: u64,
    pub first: u64,
    pub all: bool,
    pub since: Option<String>,
    pub until: Option<String>,
}

pub fn build(
    selector: &Selector,
    filters: &FilterFlags,
    now: Timestamp,
) -> Result<GetFlowsRequest, String> {
    let (first, last) = (selector.first > 0, selector.last > 0);
    if first && last {
        return Err("cannot set both --first and --last".into());
    }
    if first && selector.all {
        return Err("cannot set both --first and --all".into());
    }
    if first && selector.follow {
        return Err("cannot set both --first and --follow".into());
    }
    if last && selector.all {
        return Err("cannot set both --last and --all".into());
    }
    let time = |flag: &str, v: &Option<String>| -> Result<Option<Timestamp>, String> {
        v.as_deref()
            .map(|t| {
                parse_time(t, now).map_err(|e| format!("failed to parse the {flag} time: {e}"))
            })
            .transpose()
    };
    let since = time("since", &selector.since)?;
    let until = if selector.follow {
        None
    } else {
        time("until", &selector.until)?
    };
    let number = if first {
        selector.first
    } else if since.is_none() && until.is_none() && selector.all {
        u64::MAX
    } else if since.is_none() && until.is_none() && !last && !selector.follow {
        DEFAULT_LAST
    } else {
        selector.last
    };
    Ok(GetFlowsRequest {
        number,
        first,
        follow: selector.follow,
        since,
        until,
        whitelist: filters.to_filters()?,
        blacklist: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp {
        seconds: 1_000_000,
        nanos: 0,
    };

    fn req(s: Selector) -> Result<GetFlowsRequest, String> {
        build(&s, &FilterFlags::default(), NOW)
    }

    #[test]
    fn defaults_and_selectors() {
        assert_eq!(req(Selector::default()).unwrap().number, 20);
        let follow = req(Selector {
            follow: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((follow.number, follow.follow), (0, true));
        let last = req(Selector {
            last: 100,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((last.number, last.first), (100, false));
        let first = req(Selector {
            first: 3,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((first.number, first.first), (3, true));
        assert_eq!(
            req(Selector {
                all: true,
                ..Default::default()
            })
            .unwrap()
            .number,
            u64::MAX
        );
        let since = req(Selector {
            since: Some("5m".into()),
            until: Some("1m".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(since.number, 0, "a time window has no default count");
        assert_eq!(since.since.unwrap().seconds, NOW.seconds - 300);
        assert_eq!(since.until.unwrap().seconds, NOW.seconds - 60);
    }

    #[test]
    fn refused_combinations() {
        let err = |s| req(s).unwrap_err();
        assert_eq!(
            err(Selector {
                first: 1,
                last: 1,
                ..Default::default()
            }),
            "cannot set both --first and --last"
        );
        assert!(err(Selector {
            first: 1,
            follow: true,
            ..Default::default()
        })
        .contains("--follow"));
        assert!(err(Selector {
            since: Some("soon".into()),
            ..Default::default()
        })
        .starts_with("failed to parse the since time"));
    }

    #[test]
    fn until_is_ignored_while_following() {
        let r = req(Selector {
            follow: true,
            until: Some("1m".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(r.until.is_none());
    }
}
