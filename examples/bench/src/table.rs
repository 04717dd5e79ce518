//! The report: the machine, then one row per store, as a Markdown table
//! (`docs/benchmarks.md` takes it as printed).

use std::fmt::Write as _;

use crate::load::{Run, Scenario};
use crate::stores::{Count, StoreKind};

/// The machine and the run's settings.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    cpus: usize,
    model: String,
    load_before: String,
    load_after: String,
    adapter: String,
    connections: usize,
    seconds: u64,
    warmup: u64,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

impl Machine {
    /// The machine now, for a run with these settings.
    pub(crate) fn now(adapter: &str, connections: usize, seconds: u64, warmup: u64) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "?".to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get),
            model,
            load_before: load_average(),
            load_after: String::new(),
            adapter: adapter.to_owned(),
            connections,
            seconds,
            warmup,
        }
    }

    /// The same, with the load average at the end.
    pub(crate) fn finished(&self) -> Self {
        Self { load_after: load_average(), ..self.clone() }
    }
}

/// A run and the store's counter around it.
#[derive(Debug)]
pub(crate) struct Measured {
    run: Run,
    /// The counter's growth per request (the demo's whole life: set-up and
    /// warm-up included).
    per_request: Option<f64>,
    /// The same for Redis's scripts.
    scripts_per_request: Option<f64>,
}

impl Measured {
    /// `run`, and the counters `before` and `after` it.
    pub(crate) fn new(run: Run, before: Option<Count>, after: Option<Count>) -> Self {
        let per = |before: Option<u64>, after: Option<u64>| match (before, after) {
            (Some(before), Some(after)) if run.requests > 0 => {
                Some(after.saturating_sub(before) as f64 / run.requests as f64)
            }
            _ => None,
        };
        let per_request = per(before.map(|c| c.work), after.map(|c| c.work));
        let scripts_per_request = per(before.and_then(|c| c.scripts), after.and_then(|c| c.scripts));
        Self { run, per_request, scripts_per_request }
    }
}

/// One store's results.
#[derive(Debug)]
pub(crate) struct Row {
    /// The store.
    pub(crate) store: StoreKind,
    runs: Vec<(Scenario, Measured)>,
    /// The raw reference, if it ran.
    pub(crate) reference: Option<Measured>,
    /// What went wrong in runs that finished.
    pub(crate) failures: Vec<String>,
    /// Session hits beside a peer (`--peer`), if they ran.
    pub(crate) beside: Option<Beside>,
}

/// Session hits on the demo and on a peer server, in alternating rounds
/// (the demo's first): the same load, the same store, one after the other.
#[derive(Debug, Default)]
pub(crate) struct Beside {
    /// What the peer is, for the report (`self`: the demo again).
    pub(crate) peer: String,
    /// The demo's requests per second, per round.
    pub(crate) ours: Vec<f64>,
    /// The peer's, per round.
    pub(crate) theirs: Vec<f64>,
    /// The demo's CPU time per hit in µs, per round (`None`: no reading).
    pub(crate) ours_cpu: Vec<Option<f64>>,
    /// The peer's, per round.
    pub(crate) theirs_cpu: Vec<Option<f64>>,
}

impl Beside {
    /// Whether every round served both sides: a pass.
    fn complete(&self) -> bool {
        !self.ours.is_empty()
            && self.ours.len() == self.theirs.len()
            && self.ratios().iter().all(Option::is_some)
    }

    /// Ours ÷ the peer's, per round (none for a round the peer served
    /// nothing in).
    pub(crate) fn ratios(&self) -> Vec<Option<f64>> {
        self.ours
            .iter()
            .zip(&self.theirs)
            .map(|(ours, theirs)| (*theirs > 0.0).then(|| ours / theirs))
            .collect()
    }

    /// The demo's CPU per hit ÷ the peer's, per round: below 1, the demo
    /// spends less of the machine on a hit.
    pub(crate) fn cpu_ratios(&self) -> Vec<Option<f64>> {
        self.ours_cpu
            .iter()
            .zip(&self.theirs_cpu)
            .map(|(ours, theirs)| match (ours, theirs) {
                (Some(ours), Some(theirs)) if *theirs > 0.0 => Some(ours / theirs),
                _ => None,
            })
            .collect()
    }
}

/// The median of the values there are (the mean of the middle two for an
/// even count); `None` without any. One noisy round moves it less than it
/// moves a mean.
pub(crate) fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut known: Vec<f64> = values.iter().flatten().copied().collect();
    known.sort_by(f64::total_cmp);
    let n = known.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(known[n / 2]),
        _ => Some((known[n / 2 - 1] + known[n / 2]) / 2.0),
    }
}

impl Row {
    /// An empty row for `store`.
    pub(crate) fn new(store: StoreKind) -> Self {
        Self { store, runs: Vec::new(), reference: None, failures: Vec::new(), beside: None }
    }

    /// Adds a scenario's result; errors, thefts or no measured request make
    /// it a failure.
    pub(crate) fn add(&mut self, scenario: Scenario, measured: Measured) {
        let run = &measured.run;
        if run.errors > 0 || run.thefts > 0 || run.measured == 0 {
            self.failures.push(format!(
                "{scenario}: {} errors, {} thefts, {} requests measured; first: {}",
                run.errors,
                run.thefts,
                run.measured,
                run.first_error.as_deref().unwrap_or("none")
            ));
        }
        crate::progress(&format!(
            "  {scenario}: {:.0} req/s, p50 {} ms, p99 {} ms, {} errors, {} thefts",
            run.per_second(),
            ms(run, 0.5),
            ms(run, 0.99),
            run.errors,
            run.thefts
        ));
        self.runs.push((scenario, measured));
    }

    /// How many runs passed.
    pub(crate) fn passed(&self) -> usize {
        let clean = |m: &Measured| m.run.errors == 0 && m.run.thefts == 0 && m.run.measured > 0;
        self.runs.iter().filter(|(_, m)| clean(m)).count()
            + self.reference.iter().filter(|m| clean(m)).count()
            + self.beside.iter().filter(|b| b.complete()).count()
    }

    fn get(&self, scenario: Scenario) -> Option<&Measured> {
        self.runs.iter().find(|(s, _)| *s == scenario).map(|(_, m)| m)
    }
}

fn ms(run: &Run, q: f64) -> String {
    run.latencies.quantile_ms(q).map_or_else(|| "–".to_owned(), |ms| format!("{ms:.2}"))
}

fn rate(run: &Run) -> String {
    format!("{:.0}", run.per_second())
}

fn per_request(measured: Option<&Measured>) -> String {
    let Some(work) = measured.and_then(|m| m.per_request) else { return "–".to_owned() };
    match measured.and_then(|m| m.scripts_per_request) {
        Some(scripts) => format!("{work:.2} ({scripts:.2})"),
        None => format!("{work:.2}"),
    }
}

/// `value` with two decimals, or a dash.
fn two_places(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

/// The report.
pub(crate) fn render(machine: &Machine, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nMachine: {} CPUs, {}; load average {} before, {} after.",
        machine.cpus, machine.model, machine.load_before, machine.load_after
    );
    let _ = writeln!(
        out,
        "Demo: {} adapter, release build. {} connections, {} s measured after {} s of warm-up per scenario; \
         latencies in ms.\n",
        machine.adapter, machine.connections, machine.seconds, machine.warmup
    );
    let _ = writeln!(
        out,
        "| store | session hit req/s | p50 | p99 | cookie login req/s | p50 | p99 | anon write req/s | p50 | p99 \
         | store work per request: hit / login / write | demo CPU µs per request: hit / login / write \
         | raw reference cookie logins/s [work per login] \
         | cookie login ÷ raw |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|");
    for row in rows {
        let mut cells = vec![row.store.to_string()];
        for scenario in Scenario::ALL {
            match row.get(scenario) {
                Some(m) => cells.extend([rate(&m.run), ms(&m.run, 0.5), ms(&m.run, 0.99)]),
                None => cells.extend(["–".to_owned(), "–".to_owned(), "–".to_owned()]),
            }
        }
        let work = match row.store.counter() {
            Some(unit) => format!(
                "{} / {} / {} {unit}",
                per_request(row.get(Scenario::SessionHit)),
                per_request(row.get(Scenario::CookieLogin)),
                per_request(row.get(Scenario::AnonWrite))
            ),
            None => "n/a".to_owned(),
        };
        cells.push(work);
        let cpu = |scenario| {
            let micros = row.get(scenario).and_then(|m| m.run.server_micros_per_request());
            micros.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
        };
        cells.push(format!(
            "{} / {} / {}",
            cpu(Scenario::SessionHit),
            cpu(Scenario::CookieLogin),
            cpu(Scenario::AnonWrite)
        ));
        match &row.reference {
            Some(reference) => {
                cells.push(format!("{} [{}]", rate(&reference.run), per_request(Some(reference))));
                let ratio = row
                    .get(Scenario::CookieLogin)
                    .filter(|_| reference.run.per_second() > 0.0)
                    .map(|login| format!("{:.2}", login.run.per_second() / reference.run.per_second()));
                cells.push(ratio.unwrap_or_else(|| "–".to_owned()));
            }
            None => cells.extend(["–".to_owned(), "–".to_owned()]),
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let beside: Vec<(&Row, &Beside)> =
        rows.iter().filter_map(|row| Some((row, row.beside.as_ref()?))).collect();
    if let Some((_, first)) = beside.first() {
        let _ = writeln!(
            out,
            "\nSession hits beside the peer ({}), alternating rounds, the demo's first; req/s.\n",
            first.peer
        );
        let _ = writeln!(
            out,
            "| store | ours, per round | peer, per round | ours ÷ peer, per round | median \
             | CPU µs per hit, ours | CPU µs per hit, peer | CPU ours ÷ peer, median |"
        );
        let _ = writeln!(out, "|---|---|---|---|---:|---|---|---:|");
        let list = |values: &[f64]| values.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", ");
        for (row, beside) in beside {
            let ratios = beside.ratios();
            let ratio_list = ratios.iter().map(|ratio| two_places(*ratio)).collect::<Vec<_>>().join(", ");
            let cpu_list = |values: &[Option<f64>]| {
                values
                    .iter()
                    .map(|v| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {ratio_list} | {} | {} | {} | {} |",
                row.store,
                list(&beside.ours),
                list(&beside.theirs),
                two_places(median(&ratios)),
                cpu_list(&beside.ours_cpu),
                cpu_list(&beside.theirs_cpu),
                two_places(median(&beside.cpu_ratios()))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_table_has_a_ratio_per_round() {
        let mut row = Row::new(StoreKind::Memory);
        row.beside = Some(Beside {
            peer: "self".to_owned(),
            ours: vec![100.0, 90.0],
            theirs: vec![50.0, 0.0],
            ours_cpu: vec![Some(20.0), Some(30.0)],
            theirs_cpu: vec![Some(40.0), None],
        });
        assert_eq!(row.beside.as_ref().map(Beside::ratios), Some(vec![Some(2.0), None]));
        // A round the peer served nothing in is not a pass.
        assert_eq!(row.passed(), 0);
        let machine = Machine::now("axum", 32, 2, 1);
        let text = render(&machine.finished(), std::slice::from_ref(&row));
        assert!(text.contains("Session hits beside the peer (self)"), "{text}");
        assert!(
            text.contains("| memory | 100, 90 | 50, 0 | 2.00, – | 2.00 | 20.0, 30.0 | 40.0, – | 0.50 |"),
            "{text}"
        );
        // A round cut short (the peer failed after ours ran) is not a pass.
        row.beside = Some(Beside { peer: "p".to_owned(), ours: vec![90.0], ..Beside::default() });
        assert_eq!(row.passed(), 0);
        row.beside =
            Some(Beside { peer: "p".to_owned(), ours: vec![90.0], theirs: vec![100.0], ..Beside::default() });
        assert_eq!(row.passed(), 1);
        // No CPU reading: dashes, not figures.
        assert!(render(&machine, &[row]).contains("| memory | 90 | 100 | 0.90 | 0.90 |  |  | – |"));
        // No peer, no second table.
        assert_eq!(median(&[Some(3.0), None, Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(median(&[Some(4.0), Some(1.0)]), Some(2.5));
        assert_eq!(median(&[None]), None);
        assert!(!render(&machine, &[Row::new(StoreKind::Memory)]).contains("beside the peer"));
    }
}
