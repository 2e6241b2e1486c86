//! Reading a node's `/metrics` (Prometheus' text format): a series' value, every sample of a metric.

/// One sample: the metric's name, its labels as written (`{command="PING"}`, or empty), its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: &'a str,
    pub value: f64,
}

/// Every sample of the text (comments skipped).
pub fn samples(text: &str) -> Vec<Sample<'_>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.find('{') {
                Some(open) => series.split_at(open),
                None => (series, ""),
            };
            Some(Sample {
                name,
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// The value of the series written `series` (a name, with its labels if it has any).
pub fn value(text: &str, series: &str) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|sample| format!("{}{}", sample.name, sample.labels) == series)
        .map(|sample| sample.value)
}
