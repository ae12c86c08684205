//! Retry stage: a replayable plain request is sent again, on another
//! sidecar where there is one, when a try fails in a way its cluster's
//! [`RetryPolicy`] retries; a tunnel only when refused unprocessed
//! ([`tunnel_retry`], for [`crate::tunnel`]).
//!
//! Input: the request head for HTTP/2 and its whole body (a body the
//! policy's `max_body` holds; [`crate::forward`] decides). Output: the
//! response head and stream of the last try, for [`crate::forward`] to
//! relay. Each try's outcome goes to [`Cluster::record`] for outlier
//! ejection. A try may be retried on a failed dial, REFUSED_STREAM (RFC
//! 9113 §8.7: the stream was not processed), a reset before the response
//! head, a per-try timeout, or a listed status; each retry takes a place in
//! the cluster's [`RetryBudget`](crate::upstream::retry::RetryBudget) or
//! is not sent. A retried response's stream is dropped, which resets it
//! (RST_STREAM CANCEL, RFC 9113 §8.1). Every try carries the same request.

use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream};
use h2hop::metrics::RetryResult;
use http::{Request, Response};
use tokio::time::Instant;
use tracing::debug;

use crate::context::Context;
use crate::error::{Error, UpstreamStep};
use crate::upstream::retry::RetryInFlight;
use crate::upstream::{Cluster, Outcome, RetryOn, RetryPolicy, StreamSlot, copy_head};

/// The answer of a try: the response head and stream, and the stream's
/// place on its connection.
pub type Answered = (Response<RecvStream>, StreamSlot);

/// Sends `head` with `body` (`None`: no body) until a try answers in a
/// way not retried, the policy's retries are spent, or the budget or the
/// response timeout says stop. Returns the last try's answer or error.
pub async fn send(
    context: &Context,
    cluster: &Cluster,
    head: Request<()>,
    body: Option<Bytes>,
) -> Result<Answered, Error> {
    let policy = cluster.retry_policy();
    let started = Instant::now();
    let mut tried = Vec::new();
    // The place of the retry under way in the budget, kept until its try
    // ends (replaced by the next).
    let mut _in_flight = None;
    let mut attempt: u32 = 1;
    loop {
        let remaining = context.response_timeout.saturating_sub(started.elapsed());
        let per_try = policy.per_try_timeout.filter(|bound| *bound < remaining);
        let bound = per_try.unwrap_or(remaining);
        let result = try_once(
            context,
            cluster,
            copy_head(&head),
            body.clone(),
            &tried,
            bound,
        )
        .await;
        let condition = match &result {
            Ok((index, (response, _))) => {
                tried.push(*index);
                Some(RetryOn::Status(response.status()))
            }
            Err(failure) => {
                tried.extend(failure.index);
                failure.condition(per_try.is_some())
            }
        };
        let retried = condition.filter(|condition| policy.retries_on(*condition));
        let Some(condition) = retried.filter(|_| attempt <= policy.retries) else {
            return finish(result, context, started);
        };
        let Some(place) = cluster.retry_budget().try_retry(policy) else {
            debug!(?condition, attempt, "retry budget exhausted");
            context
                .metrics
                .retried(cluster.name(), RetryResult::BudgetExhausted);
            return finish(result, context, started);
        };
        _in_flight = Some(place);
        context.metrics.retried(cluster.name(), RetryResult::Sent);
        debug!(?condition, attempt, "retrying the request");
        // Dropping the answer resets its stream.
        drop(result);
        attempt += 1;
    }
}

/// The last try's answer, or its error (a per-try timeout reported as
/// one of the whole response timeout when that ran out too).
fn finish(
    result: Result<(usize, Answered), Failure>,
    context: &Context,
    started: Instant,
) -> Result<Answered, Error> {
    match result {
        Ok((_, answered)) => Ok(answered),
        Err(Failure {
            error: Error::UpstreamTimeout { step, addr, .. },
            ..
        }) if started.elapsed() >= context.response_timeout => Err(Error::UpstreamTimeout {
            step,
            addr,
            after: context.response_timeout,
        }),
        Err(failure) => Err(failure.error),
    }
}

/// A try that got no response head: the error, and the endpoint that took
/// the stream if one did.
struct Failure {
    error: Error,
    index: Option<usize>,
}

impl Failure {
    /// What kind of failure it was, as a retry condition; a timeout counts
    /// as a per-try one only if the per-try bound was the one running.
    fn condition(&self, per_try: bool) -> Option<RetryOn> {
        condition_of(&self.error, per_try)
    }
}

/// The retry condition `error` meets, if any.
pub fn condition_of(error: &Error, per_try: bool) -> Option<RetryOn> {
    match error {
        Error::NoEndpoint { .. } => Some(RetryOn::ConnectFailure),
        error if error.is_dial_failure() => Some(RetryOn::ConnectFailure),
        Error::UpstreamH2 { source, .. } => {
            if source.is_remote() && source.reason() == Some(Reason::REFUSED_STREAM) {
                Some(RetryOn::RefusedStream)
            } else {
                Some(RetryOn::Reset)
            }
        }
        Error::UpstreamTimeout {
            step: UpstreamStep::Response,
            ..
        } if per_try => Some(RetryOn::PerTryTimeout),
        _ => None,
    }
}

/// The outlier outcome of a failed wait for the response head.
pub fn outcome_of(error: &Error) -> Option<Outcome> {
    match condition_of(error, true)? {
        RetryOn::RefusedStream => None,
        RetryOn::PerTryTimeout => Some(Outcome::Timeout),
        _ => Some(Outcome::Reset),
    }
}

/// One try: opens a stream (avoiding the endpoints in `tried`), sends the
/// body, and waits up to `bound` for the response head.
async fn try_once(
    context: &Context,
    cluster: &Cluster,
    head: Request<()>,
    body: Option<Bytes>,
    tried: &[usize],
    bound: Duration,
) -> Result<(usize, Answered), Failure> {
    let opened = cluster
        .open_stream_avoiding(head, body.is_none(), tried)
        .await;
    let (index, (response, mut send, slot)) =
        opened.map_err(|error| Failure { error, index: None })?;
    if let Some(body) = body {
        // Queued whole (at most `max_body`): h2 asks for the capacity
        // itself and sends it as the stream's window opens, while we wait
        // for the head (an app may answer before reading it). A failure
        // shows in the response below.
        let _ = send.send_data(body, true);
    }
    match context.await_response(response, bound, cluster).await {
        Ok(response) => {
            cluster.record(index, Outcome::of_status(response.status()));
            Ok((index, (response, slot)))
        }
        Err(error) => {
            if let Some(outcome) = outcome_of(&error) {
                cluster.record(index, outcome);
            }
            Err(Failure {
                error,
                index: Some(index),
            })
        }
    }
}

/// A place in the budget to open a tunnel again after `error` ended try
/// number `tries`: only when the sidecar refused the stream unprocessed
/// (RFC 9113 §8.7) and the cluster's policy retries that. A tunnel that
/// got any answer, or broke otherwise, is never tried again.
pub fn tunnel_retry(
    context: &Context,
    cluster: &Cluster,
    error: &Error,
    tries: usize,
) -> Option<RetryInFlight> {
    let policy = cluster.retry_policy();
    let refused = condition_of(error, false) == Some(RetryOn::RefusedStream);
    let tries_left = tries <= usize::try_from(policy.retries).unwrap_or(usize::MAX);
    if !(refused && tries_left && policy.retries_on(RetryOn::RefusedStream)) {
        return None;
    }
    let place = cluster.retry_budget().try_retry(policy);
    let result = match place {
        Some(_) => RetryResult::Sent,
        None => RetryResult::BudgetExhausted,
    };
    context.metrics.retried(cluster.name(), result);
    place
}

/// Whether a body of this size hint can be replayed under `policy`: none,
/// or one whose exact length is known and within `max_body`.
pub fn replayable(end_of_stream: bool, exact_length: Option<u64>, policy: &RetryPolicy) -> bool {
    end_of_stream || exact_length.is_some_and(|length| length <= policy.max_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_bodies_of_known_length_are_replayable() {
        let policy = RetryPolicy {
            max_body: 10,
            ..RetryPolicy::default()
        };
        assert!(replayable(true, None, &policy));
        assert!(replayable(false, Some(10), &policy));
        assert!(!replayable(false, Some(11), &policy));
        assert!(!replayable(false, None, &policy));
    }

    #[test]
    fn dial_failures_and_missing_endpoints_are_connect_failures() {
        let none = Error::NoEndpoint {
            cluster: "c".to_owned(),
        };
        assert_eq!(condition_of(&none, false), Some(RetryOn::ConnectFailure));
        let timeout = Error::UpstreamTimeout {
            step: UpstreamStep::Response,
            addr: "c".to_owned(),
            after: Duration::from_secs(1),
        };
        assert_eq!(condition_of(&timeout, true), Some(RetryOn::PerTryTimeout));
        assert_eq!(condition_of(&timeout, false), None);
        assert_eq!(outcome_of(&timeout), Some(Outcome::Timeout));
    }
}
