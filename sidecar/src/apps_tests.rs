//! Tests of the choice of app: authority first, then the longest prefix
//! at a segment boundary, else none.

use super::*;

fn route(authorities: &[&str], prefix: Option<&str>) -> AppRoute {
    AppRoute {
        authorities: authorities.iter().map(|a| a.parse().unwrap()).collect(),
        path_prefix: prefix.map(|p| normalise_prefix(p).unwrap()),
    }
}

#[test]
fn authority_wins_over_any_prefix() {
    let routes = [route(&[], Some("/api")), route(&["api.internal"], None)];
    assert_eq!(pick(&routes, "api.internal", "/api/users"), Some(1));
    assert_eq!(pick(&routes, "other", "/api/users"), Some(0));
}

#[test]
fn authorities_ignore_case_and_an_entry_without_port_takes_any_port() {
    let routes = [route(&["API.Internal"], None)];
    for authority in ["api.internal", "Api.INTERNAL:8443", "api.internal:"] {
        assert_eq!(pick(&routes, authority, "/"), Some(0), "{authority}");
    }
    assert_eq!(pick(&routes, "api.internal.evil", "/"), None);
    assert_eq!(pick(&routes, "user@api.internal", "/"), Some(0));
    assert_eq!(pick(&routes, "api.internal.:443", "/"), Some(0));
    let absolute = [route(&["api.internal."], None)];
    assert_eq!(pick(&absolute, "api.internal", "/"), Some(0));
}

#[test]
fn an_entry_with_port_matches_that_port_only_and_beats_one_without() {
    let routes = [
        route(&["api.internal"], None),
        route(&["api.internal:8443"], None),
    ];
    assert_eq!(pick(&routes, "api.internal:8443", "/"), Some(1));
    assert_eq!(pick(&routes, "api.internal:80", "/"), Some(0));
    assert_eq!(pick(&routes, "api.internal", "/"), Some(0));
    let only_port = [route(&["api.internal:8443"], None)];
    assert_eq!(pick(&only_port, "api.internal", "/"), None);
}

#[test]
fn ipv6_authorities_match_with_or_without_port() {
    let routes = [route(&["[::1]"], None), route(&["[FD00::7]:80"], None)];
    assert_eq!(pick(&routes, "[::1]:8000", "/"), Some(0));
    assert_eq!(pick(&routes, "[fd00::7]:80", "/"), Some(1));
    assert_eq!(pick(&routes, "[fd00::7]:81", "/"), None);
}

#[test]
fn the_longest_matching_prefix_wins() {
    let routes = [
        route(&[], Some("/")),
        route(&[], Some("/api")),
        route(&[], Some("/api/v2/")),
    ];
    assert_eq!(pick(&routes, "x", "/api/v2/users"), Some(2));
    assert_eq!(pick(&routes, "x", "/api/v2"), Some(2));
    assert_eq!(pick(&routes, "x", "/api/v1"), Some(1));
    assert_eq!(pick(&routes, "x", "/web"), Some(0));
    assert_eq!(pick(&routes, "x", "*"), Some(0));
}

#[test]
fn prefixes_match_at_segment_boundaries_only() {
    let routes = [route(&[], Some("/api"))];
    for path in ["/api", "/api/", "/api/x", "/api?q=1"] {
        assert_eq!(pick(&routes, "x", path), Some(0), "{path}");
    }
    for path in ["/apix", "/ap", "/", "/API", "/x/api"] {
        assert_eq!(pick(&routes, "x", path), None, "{path}");
    }
}

#[test]
fn nothing_matching_gives_none() {
    let routes = [route(&["a.test"], None), route(&[], Some("/b"))];
    assert_eq!(pick(&routes, "c.test", "/c"), None);
    assert_eq!(pick(&[], "a.test", "/"), None);
    // An authority that cannot be parsed still gets the path choice.
    assert_eq!(pick(&routes, "[::1", "/b/x"), Some(1));
}

#[test]
fn bad_authority_entries_are_refused() {
    for bad in [
        "", ":80", "a b", "a/b", "a:port", "a:70000", "[::1", "[::1]x", "host:",
    ] {
        assert!(bad.parse::<AuthorityMatch>().is_err(), "{bad:?}");
    }
    let parsed: AuthorityMatch = "[::1]:8080".parse().unwrap();
    assert_eq!((parsed.host.as_str(), parsed.port), ("::1", Some(8080)));
    assert_eq!(parsed.to_string(), "[::1]:8080");
}

#[test]
fn prefixes_must_be_paths_and_lose_their_trailing_slash() {
    assert_eq!(normalise_prefix("/api/").unwrap(), "/api");
    assert_eq!(normalise_prefix("/").unwrap(), "/");
    assert_eq!(normalise_prefix("//").unwrap(), "/");
    for bad in ["api", "", "/a?b", "/a#b", "/a b"] {
        assert!(normalise_prefix(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn one_app_takes_every_stream() {
    let one = crate::Config::default().app;
    let apps = Apps::new(&one, &[]);
    let chosen = apps.choose("anything", "/at/all").unwrap();
    assert!(chosen.name.is_none());
    assert_eq!(chosen.app.config().addr, one.addr);
}

#[test]
fn named_apps_are_chosen_by_their_routes() {
    let base = crate::Config::default().app;
    let named = |name: &str, addr: &str, route: AppRoute| NamedApp {
        name: Arc::from(name),
        config: AppConfig {
            addr: addr.to_owned(),
            ..base.clone()
        },
        route,
    };
    let apps = Apps::new(
        &base,
        &[
            named("api", "127.0.0.1:9000", route(&["api.test"], None)),
            named("web", "127.0.0.1:9001", route(&[], Some("/web"))),
        ],
    );
    let api = apps.choose("api.test", "/web").unwrap();
    assert_eq!(
        (api.name.map(|n| &**n), api.app.config().addr.as_str()),
        (Some("api"), "127.0.0.1:9000")
    );
    let web = apps.choose("x.test", "/web/page").unwrap();
    assert_eq!(web.name.map(|n| &**n), Some("web"));
    assert!(apps.choose("x.test", "/other").is_none());
}
