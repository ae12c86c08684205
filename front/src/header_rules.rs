//! Per-route header control: fields to add (or overwrite) and remove on the
//! request a route forwards, and on the response its cluster gives back.
//!
//! Input: the `request_headers_to_add`, `request_headers_to_remove`,
//! `response_headers_to_add` and `response_headers_to_remove` keys of a
//! `[[route]]` ([`crate::config_file`] parses them into [`RawAddField`]s and
//! names, [`HeaderRules::parse`] checks them). Output: [`HeaderRules`] on the
//! [`crate::routes::Route`], applied by [`crate::dispatch`] with the
//! request's [`Substitutions`].
//!
//! Checked at load, so that a request never meets a bad rule:
//! - a name is a valid field name, written lower case (RFC 9110 §5.1; HTTP/2
//!   requires lower case, RFC 9113 §8.2.1);
//! - refused names: pseudo fields (`:path`…), the fields that are always
//!   hop-by-hop (RFC 9110 §7.6.1: `connection`, `keep-alive`,
//!   `proxy-connection`, `te`, `transfer-encoding`, `upgrade`), `host`
//!   (a route has `host_rewrite`), `content-length` (framing, RFC 9110
//!   §8.6), and h2hop's own `h2hop-…` fields;
//! - a value has no CR, LF or NUL (RFC 9110 §5.5) and is a valid field
//!   value; `%CLIENT_ADDRESS%`, `%REQUEST_ID%` and `%ROUTE%` are replaced
//!   per request, `%%` is a literal `%`; any other `%NAME%` (or a lone `%`)
//!   is an error.
//!
//! Order: the removals first, then the additions, so a field named in both
//! lists ends up with the added value (as Envoy does). `append = false` (the
//! default) replaces every line of the field; `append = true` adds a line.

use std::fmt;
use std::net::IpAddr;

use h2hop::translate::hop_by_hop::is_always_hop_by_hop;
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue};
use serde::Deserialize;
use tracing::warn;

/// One `{ name = "...", value = "...", append = false }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAddField {
    name: String,
    value: String,
    #[serde(default)]
    append: bool,
}

/// What one request puts into the values of the fields it gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Substitutions<'a> {
    /// `%CLIENT_ADDRESS%`: the client's address, without port.
    pub(crate) client_address: IpAddr,
    /// `%REQUEST_ID%`: the request's id; empty if it has none.
    pub(crate) request_id: &'a str,
    /// `%ROUTE%`: the route's name.
    pub(crate) route: &'a str,
}

/// A piece of a value template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Bytes copied as they are (`%%` already made `%`).
    Literal(String),
    /// `%CLIENT_ADDRESS%`.
    ClientAddress,
    /// `%REQUEST_ID%`.
    RequestId,
    /// `%ROUTE%`.
    Route,
}

/// A field value with its substitutions, parsed once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueTemplate {
    parts: Vec<Part>,
}

/// One field to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddField {
    /// The field's name, lower case.
    pub name: HeaderName,
    /// Its value.
    pub value: ValueTemplate,
    /// Add a line (`true`) or replace the field's lines (`false`).
    pub append: bool,
}

/// What to do to one message's fields: remove, then add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldRules {
    /// Fields removed, every line of each.
    pub remove: Vec<HeaderName>,
    /// Fields added, in order.
    pub add: Vec<AddField>,
}

/// A route's rules for the request it forwards and the response it relays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Applied to the request after routing and rewrites.
    pub request: FieldRules,
    /// Applied to every response from the route's cluster (not to the
    /// front's own error answers).
    pub response: FieldRules,
}

/// Which of a route's four keys a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKey {
    /// `request_headers_to_add`.
    RequestAdd,
    /// `request_headers_to_remove`.
    RequestRemove,
    /// `response_headers_to_add`.
    ResponseAdd,
    /// `response_headers_to_remove`.
    ResponseRemove,
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleKey::RequestAdd => "request_headers_to_add",
            RuleKey::RequestRemove => "request_headers_to_remove",
            RuleKey::ResponseAdd => "response_headers_to_add",
            RuleKey::ResponseRemove => "response_headers_to_remove",
        })
    }
}

/// Why a field name cannot be used in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Not a field name (RFC 9110 §5.1).
    Invalid,
    /// Has upper-case letters.
    NotLowerCase,
    /// Starts with `:`.
    Pseudo,
    /// Always hop-by-hop (RFC 9110 §7.6.1).
    HopByHop,
    /// `host` or `content-length`: the front owns them.
    Framing,
    /// An `h2hop-…` field.
    Reserved,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameProblem::Invalid => "not a valid field name",
            NameProblem::NotLowerCase => "field names must be written in lower case",
            NameProblem::Pseudo => "pseudo fields cannot be set or removed",
            NameProblem::HopByHop => "hop-by-hop fields cannot be set or removed",
            NameProblem::Framing => "host and content-length are set by the front",
            NameProblem::Reserved => "h2hop- fields are reserved",
        })
    }
}

/// Why a field value cannot be used in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    /// Contains CR, LF or NUL.
    ControlCharacter,
    /// Not a valid field value for another reason (another control byte).
    Invalid,
    /// `%NAME%` that is not one of the substitutions.
    UnknownSubstitution(String),
    /// A `%` that starts nothing: neither `%%` nor `%NAME%`.
    LonePercent,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueProblem::ControlCharacter => f.write_str("CR, LF and NUL are not allowed"),
            ValueProblem::Invalid => f.write_str("not a valid field value"),
            ValueProblem::UnknownSubstitution(name) => write!(
                f,
                "unknown substitution %{name}% (known: %CLIENT_ADDRESS%, %REQUEST_ID%, \
                 %ROUTE%, and %% for '%')"
            ),
            ValueProblem::LonePercent => f.write_str("a '%' must be '%%' or start a %NAME%"),
        }
    }
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderRuleError {
    /// A field name is refused.
    #[error("{key}: field {name:?}: {problem}")]
    Name {
        /// The key the rule is in.
        key: RuleKey,
        /// The name as written.
        name: String,
        /// What is wrong.
        problem: NameProblem,
    },
    /// A field value is refused.
    #[error("{key}: value {value:?} of {name:?}: {problem}")]
    Value {
        /// The key the rule is in.
        key: RuleKey,
        /// The field's name.
        name: String,
        /// The value as written.
        value: String,
        /// What is wrong.
        problem: ValueProblem,
    },
}

/// The four keys of a route, as written.
#[derive(Debug, Default)]
pub(crate) struct RawHeaderRules {
    pub(crate) request_add: Vec<RawAddField>,
    pub(crate) request_remove: Vec<String>,
    pub(crate) response_add: Vec<RawAddField>,
    pub(crate) response_remove: Vec<String>,
}

impl HeaderRules {
    /// Checks and parses a route's four keys.
    pub(crate) fn parse(raw: RawHeaderRules) -> Result<Self, HeaderRuleError> {
        Ok(Self {
            request: FieldRules::parse(
                raw.request_add,
                raw.request_remove,
                (RuleKey::RequestAdd, RuleKey::RequestRemove),
            )?,
            response: FieldRules::parse(
                raw.response_add,
                raw.response_remove,
                (RuleKey::ResponseAdd, RuleKey::ResponseRemove),
            )?,
        })
    }
}

impl FieldRules {
    fn parse(
        add: Vec<RawAddField>,
        remove: Vec<String>,
        (add_key, remove_key): (RuleKey, RuleKey),
    ) -> Result<Self, HeaderRuleError> {
        let remove = remove
            .iter()
            .map(|name| field_name(name, remove_key))
            .collect::<Result<Vec<_>, _>>()?;
        let add = add
            .into_iter()
            .map(|raw| {
                let name = field_name(&raw.name, add_key)?;
                let value =
                    ValueTemplate::parse(&raw.value).map_err(|problem| HeaderRuleError::Value {
                        key: add_key,
                        name: raw.name.clone(),
                        value: raw.value.clone(),
                        problem,
                    })?;
                Ok(AddField {
                    name,
                    value,
                    append: raw.append,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { remove, add })
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Removes, then adds, on `headers`. A value that substitution made
    /// invalid (it cannot: every part is a valid value) is skipped, logged.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, substitutions: &Substitutions<'_>) {
        for name in &self.remove {
            headers.remove(name);
        }
        for field in &self.add {
            let Some(value) = field.value.render(substitutions) else {
                warn!(field = %field.name, "header rule made an invalid value; skipped");
                continue;
            };
            if field.append {
                headers.append(field.name.clone(), value);
            } else {
                headers.insert(field.name.clone(), value);
            }
        }
    }
}

/// A rule's field name, checked.
fn field_name(name: &str, key: RuleKey) -> Result<HeaderName, HeaderRuleError> {
    let refused = |problem| HeaderRuleError::Name {
        key,
        name: name.to_owned(),
        problem,
    };
    if name.starts_with(':') {
        return Err(refused(NameProblem::Pseudo));
    }
    if name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(refused(NameProblem::NotLowerCase));
    }
    let parsed =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| refused(NameProblem::Invalid))?;
    if is_always_hop_by_hop(&parsed) {
        return Err(refused(NameProblem::HopByHop));
    }
    if parsed == HOST || parsed == CONTENT_LENGTH {
        return Err(refused(NameProblem::Framing));
    }
    if h2hop::upgrade::is_reserved(&parsed) {
        return Err(refused(NameProblem::Reserved));
    }
    Ok(parsed)
}

impl ValueTemplate {
    /// Splits `value` into literal text and substitutions.
    fn parse(value: &str) -> Result<Self, ValueProblem> {
        if value.contains(['\r', '\n', '\0']) {
            return Err(ValueProblem::ControlCharacter);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = value;
        while let Some((before, after)) = rest.split_once('%') {
            literal.push_str(before);
            if let Some(after) = after.strip_prefix('%') {
                literal.push('%');
                rest = after;
                continue;
            }
            let (name, after) = after.split_once('%').ok_or(ValueProblem::LonePercent)?;
            let part = match name {
                "CLIENT_ADDRESS" => Part::ClientAddress,
                "REQUEST_ID" => Part::RequestId,
                "ROUTE" => Part::Route,
                other => return Err(ValueProblem::UnknownSubstitution(other.to_owned())),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = after;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        for part in &parts {
            if let Part::Literal(text) = part {
                HeaderValue::from_str(text).map_err(|_| ValueProblem::Invalid)?;
            }
        }
        Ok(Self { parts })
    }

    /// The value for one request; `None` if it is not a valid value.
    fn render(&self, substitutions: &Substitutions<'_>) -> Option<HeaderValue> {
        let mut value = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => value.push_str(text),
                Part::ClientAddress => value.push_str(&substitutions.client_address.to_string()),
                Part::RequestId => value.push_str(substitutions.request_id),
                Part::Route => value.push_str(substitutions.route),
            }
        }
        HeaderValue::from_str(&value).ok()
    }
}

#[cfg(test)]
#[path = "header_rules_tests.rs"]
mod tests;
