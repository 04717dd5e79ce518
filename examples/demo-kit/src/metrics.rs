//! `GET /metrics`: the engine's metrics (`expected_core::telemetry`) in the
//! Prometheus text format, from `metrics-exporter-prometheus` used as a
//! recorder only (no HTTP listener of its own: the demo's router serves the
//! text).
//!
//! A real deployment serves this on an internal port or behind
//! authentication; the demos serve it next to the app, like `/healthz`,
//! without touching the store.

use std::sync::OnceLock;
use std::time::Duration;

use expected_core::telemetry;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The `Content-Type` of [`Metrics::render`]: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The buckets of `expected_store_call_duration_seconds`, in seconds: from
/// 50 µs (an in-process store) to 2.5 s (a store timing out).
pub const STORE_LATENCY_BUCKETS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5];

/// How often the recorder's upkeep runs (it drains histogram samples).
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, as the handlers see it.
#[derive(Clone)]
pub struct Metrics(Option<PrometheusHandle>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Metrics").field(&self.0.as_ref().map(|_| "prometheus")).finish()
    }
}

impl Metrics {
    /// The process-wide Prometheus recorder, installed as the `metrics`
    /// facade's global recorder on the first call (with the help texts of
    /// `expected_core::telemetry::describe`, and a thread running its upkeep);
    /// every later call answers the same one. When another recorder was
    /// installed first, [`Metrics::render`] says so instead of rendering.
    pub fn install() -> Self {
        static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
        Self(HANDLE.get_or_init(build).clone())
    }

    /// Metrics that render nothing, for a demo built without them.
    pub fn none() -> Self {
        Self(None)
    }

    /// Every metric, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        match &self.0 {
            Some(handle) => handle.render(),
            None => "# no Prometheus recorder is installed in this process\n".to_owned(),
        }
    }
}

fn build() -> Option<PrometheusHandle> {
    let matcher = Matcher::Full(telemetry::STORE_CALL_DURATION.to_owned());
    let builder = PrometheusBuilder::new().set_buckets_for_metric(matcher, &STORE_LATENCY_BUCKETS).ok()?;
    let handle = builder.install_recorder().ok()?;
    telemetry::describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP);
            upkeep.run_upkeep();
        }
    });
    // Without upkeep the text still renders (rendering drains too).
    drop(spawned);
    Some(handle)
}

/// The value of one sample of a Prometheus text exposition: the line of
/// `name` whose labels are exactly `labels` (in any order). `None` when there
/// is no such line (a counter never incremented is not rendered).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
        if series_name != name {
            return None;
        }
        let pairs: Vec<(&str, &str)> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key, value.trim_matches('"')))
            .collect();
        let same = pairs.len() == labels.len() && labels.iter().all(|label| pairs.contains(label));
        same.then(|| value.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_exact_labels() {
        let text = "# TYPE a counter\na{x=\"1\",y=\"2\"} 3\na{x=\"1\"} 4\nb 5\n";
        assert_eq!(sample(text, "a", &[("y", "2"), ("x", "1")]), Some(3.0));
        assert_eq!(sample(text, "a", &[("x", "1")]), Some(4.0));
        assert_eq!(sample(text, "b", &[]), Some(5.0));
        assert_eq!(sample(text, "a", &[("x", "2")]), None);
        assert_eq!(sample(text, "c", &[]), None);
    }
}
