//! Field lists of well-formed requests, for a test to send as they are or
//! to break one field at a time before [`super::block`] encodes them.

/// The pseudo-header fields of a well-formed `GET path`.
pub fn get(path: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "app.example"),
        (":path", path),
    ]
}

/// `get(path)` followed by `extra`.
pub fn get_with(
    path: &'static str,
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut fields = get(path);
    fields.extend_from_slice(extra);
    fields
}

/// An extended CONNECT for `websocket`, before `extra`.
pub fn extended(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":authority", "app.example"),
        (":path", "/ws"),
    ];
    fields.extend_from_slice(extra);
    fields
}
