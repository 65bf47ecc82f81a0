//! The guest's results channel, typed: one JSON object per line, written by
//! the guest ([`super::guest`]) and read by the host ([`super::qemu`], the
//! matrix), both through this one type. A line the host cannot read becomes
//! [`GuestLine::Garbled`] with its text (a panic may cut a line short).

use crate::run::attempts::AttemptPolicy;
use crate::probing::features::FeatureSet;
use crate::run::CaseResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The options the guest understood, echoed in its hello.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EchoedOptions {
    pub mode: String,
    pub cases: Vec<String>,
    pub loaders: Vec<String>,
    pub target_timeout_s: u64,
    pub boot: usize,
    pub attempts: AttemptPolicy,
}

/// A loader the guest started: its library and label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartedLoader {
    #[serde(flatten)]
    pub library: crate::loaders::LibraryInfo,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum GuestLine {
    /// First, whatever follows: the host then knows the guest ran.
    Hello {
        kernel: String,
        uptime_s: f64,
        probeconf: String,
        setup_errors: Vec<String>,
        /// `None` when the options could not be parsed (a `fatal` follows).
        options: Option<EchoedOptions>,
    },
    Features {
        features: FeatureSet,
        kfunc_variant: crate::run::artifacts::KfuncVariant,
        config: Option<BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_error: Option<String>,
        uptime_s: f64,
    },
    Loaders { loaders: Vec<StartedLoader> },
    LoaderError { loader: String, message: String },
    /// A case file that cannot be read, or an unknown id.
    CaseError { message: String },
    /// Before each case: the host knows which case a crash hit.
    CaseStart { case: String, index: usize, uptime_s: f64 },
    /// One per case and loader, after the cross-loader check.
    Result { result: Box<CaseResult> },
    /// `probeconf tcg-stress`.
    Stress { stress: super::stress::GuestStress },
    /// `probeconf bench --attach --kernel` and `--tracing --kernel`.
    AttachTiming { timing: crate::bench::AttachTiming },
    /// `probeconf bench --tracing --kernel`: one scenario through one loader.
    Hit { measurement: crate::bench::Measurement },
    Done { counts: BTreeMap<String, u64>, uptime_s: f64 },
    /// Instead of `done`: bad options, a panic.
    Fatal { message: String },
    /// Host side only: a line that is not one of the above.
    #[serde(skip)]
    Garbled(String),
}

impl GuestLine {
    /// The guest's uptime when it wrote the line, for the lines that carry it.
    pub fn uptime_s(&self) -> Option<f64> {
        match self {
            GuestLine::Hello { uptime_s, .. }
            | GuestLine::Features { uptime_s, .. }
            | GuestLine::CaseStart { uptime_s, .. }
            | GuestLine::Done { uptime_s, .. } => Some(*uptime_s),
            _ => None,
        }
    }

    /// Reads one line; anything unreadable is kept as [`GuestLine::Garbled`].
    pub fn parse(line: &str) -> GuestLine {
        serde_json::from_str(line).unwrap_or_else(|_| GuestLine::Garbled(line.to_string()))
    }

    /// The line as written to the channel (no newline).
    pub fn render(&self) -> String {
        match self {
            GuestLine::Garbled(t) => t.clone(),
            other => serde_json::to_string(other).expect("guest lines serialise"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_garbage_is_kept() {
        let l = GuestLine::CaseStart { case: "a".into(), index: 3, uptime_s: 1.5 };
        let text = l.render();
        assert!(text.contains("\"type\":\"case-start\""), "{text}");
        assert_eq!(GuestLine::parse(&text), l);
        assert_eq!(GuestLine::parse("{\"type\":\"done\",\"counts\":{},\"uptime_s\":2.0}").uptime_s(), Some(2.0));
        assert_eq!(GuestLine::parse("not json"), GuestLine::Garbled("not json".into()));
        assert_eq!(GuestLine::parse("{\"type\":\"what\"}"), GuestLine::Garbled("{\"type\":\"what\"}".into()));
    }
}
