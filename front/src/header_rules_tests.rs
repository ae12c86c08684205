//! Unit tests of [`super`]: name and value checks, templates, and the
//! order in which rules apply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn add(name: &str, value: &str, append: bool) -> RawAddField {
    RawAddField {
        name: name.to_owned(),
        value: value.to_owned(),
        append,
    }
}

fn request_rules(add_fields: Vec<RawAddField>, remove: &[&str]) -> FieldRules {
    let raw = RawHeaderRules {
        request_add: add_fields,
        request_remove: remove.iter().map(|name| (*name).to_owned()).collect(),
        ..RawHeaderRules::default()
    };
    HeaderRules::parse(raw).unwrap().request
}

fn name_problem(name: &str) -> NameProblem {
    let raw = RawHeaderRules {
        response_remove: vec![name.to_owned()],
        ..RawHeaderRules::default()
    };
    match HeaderRules::parse(raw).unwrap_err() {
        HeaderRuleError::Name { key, problem, .. } => {
            assert_eq!(key, RuleKey::ResponseRemove);
            problem
        }
        other => panic!("{name:?}: {other}"),
    }
}

fn value_problem(value: &str) -> ValueProblem {
    let raw = RawHeaderRules {
        response_add: vec![add("x-a", value, false)],
        ..RawHeaderRules::default()
    };
    match HeaderRules::parse(raw).unwrap_err() {
        HeaderRuleError::Value { key, problem, .. } => {
            assert_eq!(key, RuleKey::ResponseAdd);
            problem
        }
        other => panic!("{value:?}: {other}"),
    }
}

const SUBSTITUTIONS: Substitutions<'static> = Substitutions {
    client_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    request_id: "id-42",
    route: "chat",
};

#[test]
fn refused_names() {
    assert_eq!(name_problem(":path"), NameProblem::Pseudo);
    assert_eq!(name_problem("X-Env"), NameProblem::NotLowerCase);
    assert_eq!(name_problem("a b"), NameProblem::Invalid);
    assert_eq!(name_problem(""), NameProblem::Invalid);
    for hop in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    ] {
        assert_eq!(name_problem(hop), NameProblem::HopByHop, "{hop}");
    }
    assert_eq!(name_problem("host"), NameProblem::Framing);
    assert_eq!(name_problem("content-length"), NameProblem::Framing);
    assert_eq!(name_problem("h2hop-method"), NameProblem::Reserved);
}

#[test]
fn refused_values() {
    assert_eq!(value_problem("a\r\nb"), ValueProblem::ControlCharacter);
    assert_eq!(value_problem("a\nb"), ValueProblem::ControlCharacter);
    assert_eq!(value_problem("a\0b"), ValueProblem::ControlCharacter);
    assert_eq!(value_problem("a\x07b"), ValueProblem::Invalid);
    assert_eq!(
        value_problem("%CLIENT_IP%"),
        ValueProblem::UnknownSubstitution("CLIENT_IP".to_owned())
    );
    assert_eq!(value_problem("50%"), ValueProblem::LonePercent);
}

#[test]
fn error_names_key_field_and_value() {
    let raw = RawHeaderRules {
        request_add: vec![add("x-a", "%NOPE%", false)],
        ..RawHeaderRules::default()
    };
    let err = HeaderRules::parse(raw).unwrap_err();
    assert_eq!(
        err.to_string(),
        "request_headers_to_add: value \"%NOPE%\" of \"x-a\": unknown substitution %NOPE% \
         (known: %CLIENT_ADDRESS%, %REQUEST_ID%, %ROUTE%, and %% for '%')"
    );
}

#[test]
fn templates_substitute_per_request() {
    let rules = request_rules(
        vec![add(
            "x-who",
            "%CLIENT_ADDRESS% %REQUEST_ID% via %ROUTE%, 100%%",
            false,
        )],
        &[],
    );
    let mut headers = HeaderMap::new();
    rules.apply(&mut headers, &SUBSTITUTIONS);
    assert_eq!(headers["x-who"], "192.0.2.7 id-42 via chat, 100%");

    let v6 = Substitutions {
        client_address: IpAddr::V6(Ipv6Addr::LOCALHOST),
        request_id: "",
        ..SUBSTITUTIONS
    };
    let rules = request_rules(
        vec![add("x-who", "[%CLIENT_ADDRESS%]%REQUEST_ID%", false)],
        &[],
    );
    let mut headers = HeaderMap::new();
    rules.apply(&mut headers, &v6);
    assert_eq!(headers["x-who"], "[::1]");
}

#[test]
fn templates_parse_into_parts() {
    let template = ValueTemplate::parse("a%%b%ROUTE%%%").unwrap();
    assert_eq!(
        template.parts,
        [
            Part::Literal("a%b".to_owned()),
            Part::Route,
            Part::Literal("%".to_owned())
        ]
    );
    assert!(ValueTemplate::parse("").unwrap().parts.is_empty());
}

#[test]
fn overwrite_append_and_remove() {
    let rules = request_rules(
        vec![
            add("x-env", "prod", false),
            add("x-tag", "second", true),
            add("x-debug", "re-added", false),
        ],
        &["x-debug", "x-gone"],
    );
    let mut headers = HeaderMap::new();
    headers.append("x-env", HeaderValue::from_static("dev"));
    headers.append("x-env", HeaderValue::from_static("test"));
    headers.insert("x-tag", HeaderValue::from_static("first"));
    headers.insert("x-debug", HeaderValue::from_static("1"));
    headers.insert("x-gone", HeaderValue::from_static("1"));
    headers.insert("x-kept", HeaderValue::from_static("1"));
    rules.apply(&mut headers, &SUBSTITUTIONS);
    let all = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-env"), ["prod"]);
    assert_eq!(all("x-tag"), ["first", "second"]);
    // Removed first, then added: the added value is there.
    assert_eq!(all("x-debug"), ["re-added"]);
    assert!(all("x-gone").is_empty());
    assert_eq!(all("x-kept"), ["1"]);
}

#[test]
fn no_keys_give_empty_rules() {
    let rules = HeaderRules::parse(RawHeaderRules::default()).unwrap();
    assert!(rules.request.is_empty() && rules.response.is_empty());
    assert_eq!(rules, HeaderRules::default());
}
