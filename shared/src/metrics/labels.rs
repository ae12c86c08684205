//! The label sets of [`super::Metrics`]' families, and how the label
//! enums are written.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use super::{Direction, HealthCheckResult, LimitKind, ReloadResult, RetryResult, TunnelResult};

/// Label values are lower case, as Prometheus conventions have them.
macro_rules! label_values {
    ($type:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                use std::fmt::Write as _;
                encoder.write_str(match self {
                    $(Self::$variant => $text),+
                })
            }
        }
    };
}

label_values!(TunnelResult { Clean => "clean", Reset => "reset", Idle => "idle", FinTimeout => "fin_timeout", Refused => "refused", Failed => "failed", Denied => "denied" });
label_values!(Direction { Up => "up", Down => "down" });
label_values!(HealthCheckResult { Pass => "pass", Fail => "fail" });
label_values!(ReloadResult { Ok => "ok", Failed => "failed" });
label_values!(RetryResult { Sent => "sent", BudgetExhausted => "budget_exhausted", NotReplayable => "not_replayable" });
label_values!(LimitKind { ClientConnections => "client_connections", ClientAddress => "client_address", ClientStreams => "client_streams" });

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProtocolLabel {
    pub(super) protocol: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TunnelLabels {
    pub(super) protocol: String,
    pub(super) result: TunnelResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TargetLabel {
    pub(super) target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TcpLabels {
    pub(super) target: String,
    pub(super) result: TunnelResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TcpBytesLabels {
    pub(super) target: String,
    pub(super) direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirectionLabel {
    pub(super) direction: Direction,
}

/// The `status` label's values, by the first digit of the status less one.
pub(super) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StatusLabel {
    pub(super) status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LimitLabel {
    pub(super) limit: LimitKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReloadLabel {
    pub(super) result: ReloadResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EndpointLabels {
    pub(super) cluster: String,
    pub(super) endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HealthCheckLabels {
    pub(super) cluster: String,
    pub(super) endpoint: String,
    pub(super) result: HealthCheckResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RetryLabels {
    pub(super) cluster: String,
    pub(super) result: RetryResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ClusterLabel {
    pub(super) cluster: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CulpritLabel {
    pub(super) culprit: &'static str,
}
