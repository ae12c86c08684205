//! Unit tests of [`super`] for the `[[route]]` keys of header control and
//! weighted clusters: `name`, `clusters`, and the four header-rule keys;
//! one test per load error, each naming the route by number.

use std::path::Path;

use http::header::HeaderName;

use super::*;
use crate::header_rules::HeaderRuleError;
use crate::header_rules::{NameProblem, ValueProblem};
use crate::weighted::WeightError;

/// Two h2c clusters, `a` and `b`, then `routes`.
fn with_routes(routes: &str) -> String {
    format!(
        "[[cluster]]\nname = \"a\"\nendpoints = [\"a:80\"]\nh2c = true\n\n\
         [[cluster]]\nname = \"b\"\nendpoints = [\"b:80\"]\nh2c = true\n\n{routes}"
    )
}

fn parse_ok(routes: &str) -> FileConfig {
    parse(&with_routes(routes), Path::new("/nonexistent")).unwrap()
}

fn parse_err(routes: &str) -> ConfigError {
    parse(&with_routes(routes), Path::new("/nonexistent")).unwrap_err()
}

/// The error and its sources, joined as anyhow's `{:#}` would.
fn chain(err: &ConfigError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[test]
fn header_rules_and_weights_parse() {
    let config = parse_ok(
        r#"
[[route]]
name = "canary"
clusters = [{ name = "a", weight = 80 }, { name = "b", weight = 20 }]
request_headers_to_add = [
  { name = "x-env", value = "prod" },
  { name = "x-tag", value = "%ROUTE%", append = true },
]
request_headers_to_remove = ["x-debug"]
response_headers_to_add = [{ name = "x-served-by", value = "h2hop" }]
response_headers_to_remove = ["server"]
"#,
    );
    let route = &config.routes.routes()[0];
    assert_eq!(route.name, "canary");
    assert_eq!(
        route.cluster,
        ClusterChoice::weighted(vec![(0, 80), (1, 20)], &["a", "b"]).unwrap()
    );
    let request = &route.headers.request;
    let added: Vec<(&str, bool)> = request
        .add
        .iter()
        .map(|field| (field.name.as_str(), field.append))
        .collect();
    assert_eq!(added, [("x-env", false), ("x-tag", true)]);
    assert_eq!(request.remove, [HeaderName::from_static("x-debug")]);
    let response = &route.headers.response;
    assert_eq!(response.add[0].name, "x-served-by");
    assert_eq!(response.remove, [HeaderName::from_static("server")]);
}

#[test]
fn routes_without_name_are_numbered() {
    let config = parse_ok("[[route]]\ncluster = \"a\"\n[[route]]\ncluster = \"b\"\n");
    let names: Vec<&str> = config
        .routes
        .routes()
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    assert_eq!(names, ["route-1", "route-2"]);
    assert!(config.routes.routes()[0].headers.request.is_empty());
}

#[test]
fn both_cluster_keys_is_an_error() {
    let err = parse_err("[[route]]\ncluster = \"a\"\nclusters = [{ name = \"b\", weight = 1 }]\n");
    assert!(
        matches!(err, ConfigError::BothClusterKeys { route: 1 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "route 1: set either cluster or clusters, not both"
    );
}

#[test]
fn no_cluster_key_is_an_error() {
    let err = parse_err("[[route]]\ncluster = \"a\"\n[[route]]\npath_prefix = \"/x\"\n");
    assert!(
        matches!(err, ConfigError::NoClusterKey { route: 2 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "route 2: cluster or clusters is required");
}

#[test]
fn weighted_unknown_cluster_is_an_error() {
    let err = parse_err(
        "[[route]]\nclusters = [{ name = \"a\", weight = 1 }, { name = \"c\", weight = 1 }]\n",
    );
    assert_eq!(err.to_string(), "route 1: unknown cluster \"c\"");
}

#[test]
fn bad_weight_lists_are_errors() {
    let cases = [
        ("[]", WeightError::Empty),
        (
            "[{ name = \"a\", weight = 0 }, { name = \"b\", weight = 0 }]",
            WeightError::AllZero,
        ),
        (
            "[{ name = \"a\", weight = 4294967295 }, { name = \"b\", weight = 1 }]",
            WeightError::Overflow,
        ),
        (
            "[{ name = \"a\", weight = 1 }, { name = \"a\", weight = 2 }]",
            WeightError::Duplicate {
                name: "a".to_owned(),
            },
        ),
    ];
    for (list, expected) in cases {
        let err = parse_err(&format!("[[route]]\nclusters = {list}\n"));
        assert!(
            matches!(&err, ConfigError::Weights { route: 1, source } if *source == expected),
            "{list}: {err:?}"
        );
    }
    let text = chain(&parse_err(
        "[[route]]\nclusters = [{ name = \"a\", weight = 0 }]\n",
    ));
    assert_eq!(
        text,
        "route 1: clusters: every weight is 0: no cluster would take a request"
    );
}

#[test]
fn bad_weights_are_syntax_errors() {
    for list in [
        "[{ name = \"a\", weight = -1 }]",
        "[{ name = \"a\", weight = 4294967296 }]",
        "[{ name = \"a\" }]",
        "[{ name = \"a\", weight = 1, priority = 2 }]",
    ] {
        let err = parse_err(&format!("[[route]]\nclusters = {list}\n"));
        assert!(matches!(err, ConfigError::Syntax(_)), "{list}: {err:?}");
    }
}

#[test]
fn bad_header_names_are_errors_naming_route_and_key() {
    let err = parse_err(
        "[[route]]\ncluster = \"a\"\n[[route]]\ncluster = \"b\"\n\
         request_headers_to_remove = [\"connection\"]\n",
    );
    assert!(
        matches!(
            &err,
            ConfigError::Headers {
                route: 2,
                source: HeaderRuleError::Name {
                    problem: NameProblem::HopByHop,
                    ..
                }
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        chain(&err),
        "route 2: request_headers_to_remove: field \"connection\": \
         hop-by-hop fields cannot be set or removed"
    );
    for (key, name, problem) in [
        ("request_headers_to_add", "Host", NameProblem::NotLowerCase),
        ("request_headers_to_add", "host", NameProblem::Framing),
        ("response_headers_to_add", ":status", NameProblem::Pseudo),
        (
            "response_headers_to_add",
            "content-length",
            NameProblem::Framing,
        ),
        (
            "response_headers_to_add",
            "h2hop-body-length",
            NameProblem::Reserved,
        ),
    ] {
        let routes = format!(
            "[[route]]\ncluster = \"a\"\n{key} = [{{ name = \"{name}\", value = \"v\" }}]\n"
        );
        let err = parse_err(&routes);
        assert!(
            matches!(&err, ConfigError::Headers { route: 1, source: HeaderRuleError::Name { problem: p, .. } } if *p == problem),
            "{key} {name}: {err:?}"
        );
    }
}

#[test]
fn bad_header_values_are_errors() {
    for (value, problem) in [
        ("\"a\\r\\nx-evil: 1\"", ValueProblem::ControlCharacter),
        ("\"a\\u0000\"", ValueProblem::ControlCharacter),
        (
            "\"%CLIENT%\"",
            ValueProblem::UnknownSubstitution("CLIENT".to_owned()),
        ),
        ("\"100%\"", ValueProblem::LonePercent),
    ] {
        let routes = format!(
            "[[route]]\ncluster = \"a\"\n\
             response_headers_to_add = [{{ name = \"x-a\", value = {value} }}]\n"
        );
        let err = parse_err(&routes);
        assert!(
            matches!(&err, ConfigError::Headers { route: 1, source: HeaderRuleError::Value { problem: p, .. } } if *p == problem),
            "{value}: {err:?}"
        );
    }
}

#[test]
fn header_rule_keys_are_typed() {
    for routes in [
        "request_headers_to_add = [{ name = \"x-a\" }]",
        "request_headers_to_add = [{ name = \"x-a\", value = \"v\", overwrite = true }]",
        "request_headers_to_add = [{ name = \"x-a\", value = \"v\", append = \"yes\" }]",
        "request_headers_to_remove = \"x-a\"",
    ] {
        let err = parse_err(&format!("[[route]]\ncluster = \"a\"\n{routes}\n"));
        assert!(matches!(err, ConfigError::Syntax(_)), "{routes}: {err:?}");
    }
}

#[test]
fn bad_route_names_are_errors() {
    for name in ["", "a b", "x%y", "é"] {
        let err = parse_err(&format!("[[route]]\nname = \"{name}\"\ncluster = \"a\"\n"));
        assert!(
            matches!(&err, ConfigError::RouteName { route: 1, name: n } if n == name),
            "{name:?}: {err:?}"
        );
    }
}

#[test]
fn duplicate_route_names_are_errors() {
    let err = parse_err(
        "[[route]]\nname = \"x\"\ncluster = \"a\"\n[[route]]\nname = \"x\"\ncluster = \"b\"\n",
    );
    assert_eq!(err.to_string(), "route 2: name \"x\" is already taken");
    // A given name may collide with another route's default name.
    let err =
        parse_err("[[route]]\nname = \"route-2\"\ncluster = \"a\"\n[[route]]\ncluster = \"b\"\n");
    assert!(
        matches!(&err, ConfigError::DuplicateRoute { route: 2, name } if name == "route-2"),
        "{err:?}"
    );
}
