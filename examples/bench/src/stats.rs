//! Latency percentiles, from every measured request (no sampling).

/// Latencies in microseconds, sorted.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    sorted: Vec<u32>,
}

impl Latencies {
    /// Sorts `micros`.
    pub(crate) fn new(mut micros: Vec<u32>) -> Self {
        micros.sort_unstable();
        Self { sorted: micros }
    }

    /// The `q` quantile (0 to 1) in milliseconds, nearest rank; `None`
    /// without measurements.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(f64::from(self.sorted[rank - 1]) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let latencies = Latencies::new((1..=100).rev().map(|ms| ms * 1000).collect());
        assert_eq!(latencies.quantile_ms(0.5), Some(50.0));
        assert_eq!(latencies.quantile_ms(0.99), Some(99.0));
        assert_eq!(latencies.quantile_ms(1.0), Some(100.0));
        assert_eq!(Latencies::default().quantile_ms(0.5), None);
    }
}
