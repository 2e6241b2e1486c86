//! Two kinds of chart, drawn as SVG with `plotters` (text is left to the viewer's sans-serif font):
//! horizontal [`Bars`] (one row per server, a bar per series, the quality bar as a red line) and
//! [`Lines`] (series of points, the bar as a red line).

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const SIZE: (u32, u32) = (1000, 480);
const FONT: &str = "sans-serif";
/// Room left of the bars for the row names.
const NAMES_WIDTH: u32 = 400;
/// Series colours, in order (ours first in every chart).
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];
const TARGET: RGBColor = RGBColor(214, 39, 40);

fn colour(index: usize) -> RGBColor {
    COLOURS[index % COLOURS.len()]
}

/// A plotters error (generic over the backend's) as an `anyhow` one.
fn drawing<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow!("drawing: {error:?}")
}

/// Horizontal bars: a row per `rows` entry, one bar per series in each.
pub(crate) struct Bars {
    pub title: String,
    /// The value axis' description (with its unit).
    pub axis: String,
    pub rows: Vec<String>,
    /// (series name, a value per row; NaN: no bar).
    pub series: Vec<(String, Vec<f64>)>,
    /// (its label, the value): the quality bar, a vertical red line.
    pub target: Option<(String, f64)>,
}

impl Bars {
    pub(crate) fn draw(&self, path: &Path) -> anyhow::Result<()> {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let largest = self
            .series
            .iter()
            .flat_map(|(_, values)| values.iter().copied())
            .chain(self.target.iter().map(|(_, value)| *value))
            .filter(|value| value.is_finite())
            .fold(0.0_f64, f64::max);
        let rows = self.rows.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(NAMES_WIDTH)
            .build_cartesian_2d(0.0..largest * 1.18, 0.0..rows)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(self.axis.as_str())
            .draw()
            .map_err(drawing)?;

        // Row `index` is drawn from the top; its bars share 80% of its height.
        let height = 0.8 / self.series.len() as f64;
        for (number, (name, values)) in self.series.iter().enumerate() {
            let fill = colour(number);
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite());
            let bottom = |row: usize| {
                rows - row as f64 - 0.9 + (self.series.len() - 1 - number) as f64 * height
            };
            chart
                .draw_series(bars.clone().map(|(row, value)| {
                    Rectangle::new(
                        [(0.0, bottom(row)), (*value, bottom(row) + height)],
                        fill.filled(),
                    )
                }))
                .map_err(drawing)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
            let style =
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series(bars.map(|(row, value)| {
                    Text::new(
                        format!(" {}", figure(*value)),
                        (*value, bottom(row) + height / 2.0),
                        style.clone(),
                    )
                }))
                .map_err(drawing)?;
        }
        // The bar's line is labelled where it starts (a legend box would cover the longest bars).
        if let Some((label, value)) = &self.target {
            chart
                .draw_series(LineSeries::new(
                    [(*value, 0.0), (*value, rows)],
                    TARGET.stroke_width(2),
                ))
                .map_err(drawing)?;
            let (x, y) = chart.backend_coord(&(*value, rows));
            let style = TextStyle::from((FONT, 13).into_font())
                .color(&TARGET)
                .pos(Pos::new(HPos::Left, VPos::Top));
            root.draw(&Text::new(label.as_str(), (x + 4, y + 2), style))
                .map_err(drawing)?;
        }
        let names =
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (row, name) in self.rows.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, rows - row as f64 - 0.5));
            root.draw(&Text::new(name.as_str(), (x - 8, y), names.clone()))
                .map_err(drawing)?;
        }
        // One series is named by the axis; several need a legend.
        if self.series.len() > 1 {
            legend(&mut chart)?;
        }
        root.present().map_err(drawing)?;
        Ok(())
    }
}

/// Lines through points, e.g. a percentile curve or a rate over time.
pub(crate) struct Lines {
    pub title: String,
    pub x_axis: String,
    pub y_axis: String,
    /// (series name, its points).
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// (its label, the value): the quality bar, a horizontal red line.
    pub target: Option<(String, f64)>,
}

impl Lines {
    pub(crate) fn draw(&self, path: &Path) -> anyhow::Result<()> {
        let points = || self.series.iter().flat_map(|(_, points)| points.iter());
        let x_end = points().map(|p| p.0).fold(0.0_f64, f64::max);
        let y_end = points()
            .map(|p| p.1)
            .chain(self.target.iter().map(|(_, value)| *value))
            .fold(0.0_f64, f64::max);
        if x_end <= 0.0 {
            return Err(anyhow!("{}: no points", self.title));
        }
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_end, 0.0..y_end * 1.15)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc(self.x_axis.as_str())
            .y_desc(self.y_axis.as_str())
            .draw()
            .map_err(drawing)?;
        for (number, (name, points)) in self.series.iter().enumerate() {
            let stroke = colour(number).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), stroke))
                .map_err(drawing)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 12, y)], stroke));
        }
        if let Some((label, value)) = &self.target {
            let value = *value;
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, value), (x_end, value)],
                    8,
                    5,
                    TARGET.stroke_width(2),
                ))
                .map_err(drawing)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 12, y)], TARGET.stroke_width(2))
                });
        }
        legend(&mut chart)?;
        root.present().map_err(drawing)?;
        Ok(())
    }
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()
        .map_err(drawing)
        .context("the legend")
}

/// A figure with the digits that matter at its size.
fn figure(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        v if v >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_chart_and_a_line_chart_are_svg_with_their_text() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let bars = Bars {
            title: "bars".into(),
            axis: "ms".into(),
            rows: vec!["ours".into(), "theirs".into()],
            series: vec![
                ("p50".into(), vec![1.0, 0.5]),
                ("p99".into(), vec![7.0, f64::NAN]),
            ],
            target: Some(("target".into(), 4.0)),
        };
        bars.draw(&dir.path().join("bars.svg")).expect("drawn");
        let svg = std::fs::read_to_string(dir.path().join("bars.svg")).expect("written");
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["bars", "ours", "theirs", "p99", "7.00", "target"] {
            assert!(svg.contains(text), "{text} missing");
        }

        let lines = Lines {
            title: "lines".into(),
            x_axis: "s".into(),
            y_axis: "requests".into(),
            series: vec![("rate".into(), vec![(0.0, 1.0), (1.0, 2.0)])],
            target: Some(("limit".into(), 2.0)),
        };
        lines.draw(&dir.path().join("lines.svg")).expect("drawn");
        let svg = std::fs::read_to_string(dir.path().join("lines.svg")).expect("written");
        assert!(svg.contains("<polyline") && svg.contains("limit"), "{svg}");

        let empty = Lines {
            series: vec![],
            ..lines
        };
        assert!(empty.draw(&dir.path().join("empty.svg")).is_err());
    }
}
