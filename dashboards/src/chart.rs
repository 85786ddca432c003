//! Chart geometry: scales, ticks, bands and paths, and the charts the pages draw
//! (bars, lines, horizontal bars) as plain shapes with their coordinates already
//! computed, for `templates/chart.html` to write out as SVG. Nothing here knows
//! about energy or languages: values come in as numbers, labels as text.
//!
//! Coordinates are in the SVG's own units (its `viewBox`), `y` growing downwards,
//! written with one decimal at most.

/// A linear map from values (the domain) to coordinates (the range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    domain: (f64, f64),
    range: (f64, f64),
}

impl Scale {
    /// A scale from `domain` to `range`; an empty domain maps everything to the
    /// start of the range.
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        Scale { domain, range }
    }

    pub fn map(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        if d1 == d0 || !value.is_finite() {
            return r0;
        }
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// Round ticks for an axis: every `step` from `min` to `max`, both included.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    pub min: f64,
    pub max: f64,
    pub step: f64,
    pub values: Vec<f64>,
    /// Decimals a label needs to tell the ticks apart (0 for a step of 500, 1 for
    /// 2.5).
    pub decimals: usize,
}

/// Ticks at 1, 2, 2.5 or 5 times a power of ten, the smallest such step that
/// covers `[lo, hi]` in at most `max_intervals` intervals, starting and ending on
/// a tick. An empty or flat range becomes `[0, 1]` (or reaches out to 0).
pub fn nice_ticks(lo: f64, hi: f64, max_intervals: usize) -> Ticks {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo.min(hi), lo.max(hi))
    } else {
        (0.0, 1.0)
    };
    if (hi - lo).abs() < f64::EPSILON {
        if hi > 0.0 {
            lo = lo.min(0.0);
        } else if lo < 0.0 {
            hi = 0.0;
        } else {
            hi = 1.0;
        }
    }
    let intervals = max_intervals.max(1) as f64;
    let raw = (hi - lo) / intervals;
    let mut magnitude = 10f64.powf(raw.log10().floor());
    let mut candidates = [1.0, 2.0, 2.5, 5.0].into_iter().cycle();
    let mut step;
    loop {
        let Some(c) = candidates.next() else {
            // The cycle never ends; this keeps the loop total.
            step = raw;
            break;
        };
        step = c * magnitude;
        if c == 5.0 {
            // After 5 comes 10, i.e. 1 of the next magnitude.
            magnitude *= 10.0;
        }
        let min = (lo / step).floor() * step;
        let max = (hi / step).ceil() * step;
        if step >= raw * (1.0 - 1e-12) && ((max - min) / step).round() <= intervals {
            break;
        }
    }
    let min = (lo / step).floor() * step;
    let max = (hi / step).ceil() * step;
    let n = ((max - min) / step).round() as usize;
    let values = (0..=n).map(|i| clean(min + i as f64 * step)).collect();
    let decimals = (0..=3)
        .find(|d| {
            let scaled = step * 10f64.powi(*d as i32);
            (scaled - scaled.round()).abs() < 1e-9
        })
        .unwrap_or(3);
    Ticks {
        min: clean(min),
        max: clean(max),
        step,
        values,
        decimals,
    }
}

/// Rounds away the float noise of sums of steps (0.30000000000000004) and −0.
fn clean(v: f64) -> f64 {
    let r = (v * 1e9).round() / 1e9;
    if r == 0.0 { 0.0 } else { r }
}

/// Equal slots side by side, each leaving `padding` (a fraction) empty around
/// what it holds: the x axis of a bar chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub start: f64,
    pub end: f64,
    pub count: usize,
    pub padding: f64,
}

impl Band {
    /// Width of one slot.
    pub fn slot(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.end - self.start) / self.count as f64
        }
    }

    /// The middle of slot `i`.
    pub fn center(&self, i: usize) -> f64 {
        self.start + (i as f64 + 0.5) * self.slot()
    }

    /// `x` and width of the `k`-th of `of` bars side by side in slot `i`.
    pub fn bar(&self, i: usize, k: usize, of: usize) -> (f64, f64) {
        let slot = self.slot();
        let inner = slot * (1.0 - self.padding);
        let width = inner / of.max(1) as f64;
        let x = self.start + i as f64 * slot + slot * self.padding / 2.0 + k as f64 * width;
        (x, width)
    }
}

/// An SVG path through `points`, broken where a point is missing: `M x y L x y …`,
/// a new `M` after each gap. A point alone between gaps is a `M` only (drawn by the
/// caller as a marker if wanted).
pub fn line_path(points: &[Option<(f64, f64)>]) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some((x, y)) => {
                d.push(if pen_down { 'L' } else { 'M' });
                d.push_str(&coord(*x));
                d.push(' ');
                d.push_str(&coord(*y));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// A coordinate with one decimal at most: `12`, `12.3`, never `-0`.
pub fn coord(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let tenths = (v * 10.0).round();
    let tenths = if tenths == 0.0 { 0.0 } else { tenths };
    if tenths % 10.0 == 0.0 {
        format!("{:.0}", tenths / 10.0)
    } else {
        format!("{:.1}", tenths / 10.0)
    }
}

/// The drawing area inside an SVG of `width` x `height`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    /// A frame of `width` x `height` with margins for the axes' labels.
    pub fn new(width: f64, height: f64, margins: [f64; 4]) -> Frame {
        let [top, right, bottom, left] = margins;
        Frame {
            width,
            height,
            left,
            right: width - right,
            top,
            bottom: height - bottom,
        }
    }
}

/// A tick: where (x or y) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct TickMark {
    pub at: String,
    pub label: String,
}

/// One rectangle of a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct BarMark {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    /// The series' CSS class (`series-production`).
    pub class: &'static str,
    /// Striped over its colour, so that the series is told apart without colour.
    pub hatched: bool,
    /// Shown on hover: "12 mars 10 h · Production : 1,4 kWh".
    pub tip: String,
}

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineMark {
    pub d: String,
    pub class: &'static str,
    /// Points alone between gaps, drawn as dots (a path of one point shows nothing).
    pub dots: Vec<(String, String)>,
}

/// A label written beside the plot (a row name of a horizontal bar chart).
#[derive(Debug, Clone, PartialEq)]
pub struct RowLabel {
    pub x: String,
    pub y: String,
    pub text: String,
    /// The whole text when `text` was shortened.
    pub full: String,
}

/// A chart ready for the template.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSvg {
    /// Unique on the page: prefixes the ids of the title and the hatch pattern.
    pub id: String,
    /// The accessible name, also the `<title>`.
    pub title: String,
    pub width: String,
    pub height: String,
    pub left: String,
    pub right: String,
    pub top: String,
    pub bottom: String,
    /// Where the value 0 is (the axis the bars stand on).
    pub baseline: String,
    /// Gridlines across the plot: y for vertical charts, x for horizontal ones.
    pub value_ticks: Vec<TickMark>,
    pub horizontal: bool,
    /// Labels along the other axis (x for vertical charts).
    pub category_ticks: Vec<TickMark>,
    pub row_labels: Vec<RowLabel>,
    /// The unit of the values ("kWh"), written at the top of the value axis.
    pub unit: String,
    pub bars: Vec<BarMark>,
    pub lines: Vec<LineMark>,
    /// Said in the middle of the plot when there is nothing to draw.
    pub empty: Option<String>,
    /// A vertical marker (e.g. now on today's curve), at this x.
    pub marker_x: Option<String>,
}

/// One series of values, one per category (bucket) or row.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub class: &'static str,
    pub label: String,
    pub values: Vec<Option<f64>>,
    pub hatched: bool,
}

/// What a vertical bar chart shows.
#[derive(Clone)]
pub struct BarChart<'a> {
    pub id: &'a str,
    pub title: String,
    pub unit: String,
    /// One per category; `None` leaves a category unlabelled (to thin the labels).
    pub categories: Vec<Option<String>>,
    /// The categories' names for the bars' tips.
    pub category_names: Vec<String>,
    pub series: Vec<Series>,
    /// Series share a slot, positive values stacked up and negative down, instead
    /// of standing side by side.
    pub stacked: bool,
    /// A value axis that always covers this range (0 to 100 for shares).
    pub fixed: Option<(f64, f64)>,
    /// Formats a tick's value with the given decimals, and a bar's value for its tip.
    pub tick_label: &'a dyn Fn(f64, usize) -> String,
    pub value_label: &'a dyn Fn(f64) -> String,
    pub empty: Option<String>,
}

/// Size of the history page's charts, in SVG units.
pub const PAGE_CHART: (f64, f64) = (720.0, 260.0);
/// Margins (top, right, bottom, left) of the history page's charts.
pub const PAGE_MARGINS: [f64; 4] = [26.0, 10.0, 30.0, 58.0];

/// The value axis of `values` (and `fixed`): at most five intervals.
fn value_ticks(values: impl Iterator<Item = f64>, fixed: Option<(f64, f64)>) -> Ticks {
    let (mut lo, mut hi) = fixed.unwrap_or((0.0, 0.0));
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    nice_ticks(lo, hi, 5)
}

/// A vertical bar chart in a frame of [`PAGE_CHART`].
pub fn bar_chart(spec: &BarChart<'_>) -> ChartSvg {
    let frame = Frame::new(PAGE_CHART.0, PAGE_CHART.1, PAGE_MARGINS);
    let n = spec.categories.len();
    // Stacked: the extent is that of each slot's sums up and down.
    let extents: Vec<f64> = if spec.stacked {
        (0..n)
            .flat_map(|i| {
                let (mut up, mut down) = (0.0, 0.0);
                for s in &spec.series {
                    match s.values.get(i).copied().flatten() {
                        Some(v) if v >= 0.0 => up += v,
                        Some(v) => down += v,
                        None => {}
                    }
                }
                [up, down]
            })
            .collect()
    } else {
        spec.series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
            .collect()
    };
    let ticks = value_ticks(extents.into_iter(), spec.fixed);
    let y = Scale::new((ticks.min, ticks.max), (frame.bottom, frame.top));
    let band = Band {
        start: frame.left,
        end: frame.right,
        count: n,
        padding: 0.2,
    };
    let mut bars = Vec::new();
    let groups = if spec.stacked { 1 } else { spec.series.len() };
    for i in 0..n {
        let (mut up, mut down) = (0.0, 0.0);
        for (k, s) in spec.series.iter().enumerate() {
            let Some(v) = s.values.get(i).copied().flatten().filter(|v| v.is_finite()) else {
                continue;
            };
            let (x, width) = band.bar(i, if spec.stacked { 0 } else { k }, groups);
            let (from, to) = if !spec.stacked {
                (0.0, v)
            } else if v >= 0.0 {
                up += v;
                (up - v, up)
            } else {
                down += v;
                (down - v, down)
            };
            let (y0, y1) = (y.map(from), y.map(to));
            let name = spec
                .category_names
                .get(i)
                .map(String::as_str)
                .unwrap_or_default();
            bars.push(BarMark {
                x: coord(x),
                y: coord(y0.min(y1)),
                width: coord(width),
                height: coord((y1 - y0).abs()),
                class: s.class,
                hatched: s.hatched,
                tip: format!("{name} · {} : {}", s.label, (spec.value_label)(v)),
            });
        }
    }
    let value_ticks = ticks
        .values
        .iter()
        .map(|v| TickMark {
            at: coord(y.map(*v)),
            label: (spec.tick_label)(*v, ticks.decimals),
        })
        .collect();
    let category_ticks = spec
        .categories
        .iter()
        .enumerate()
        .filter_map(|(i, label)| {
            label.as_ref().map(|label| TickMark {
                at: coord(band.center(i)),
                label: label.clone(),
            })
        })
        .collect();
    ChartSvg {
        id: spec.id.to_string(),
        title: spec.title.clone(),
        width: coord(frame.width),
        height: coord(frame.height),
        left: coord(frame.left),
        right: coord(frame.right),
        top: coord(frame.top),
        bottom: coord(frame.bottom),
        baseline: coord(y.map(0.0f64.clamp(ticks.min, ticks.max))),
        value_ticks,
        horizontal: false,
        category_ticks,
        row_labels: vec![],
        unit: spec.unit.clone(),
        bars,
        lines: vec![],
        empty: spec.empty.clone(),
        marker_x: None,
    }
}

/// One line of a line chart: points at `x` (in the x domain's units).
#[derive(Debug, Clone, PartialEq)]
pub struct LineSeries {
    pub class: &'static str,
    pub points: Vec<(f64, Option<f64>)>,
}

/// What a line chart shows.
#[derive(Clone)]
pub struct LineChart<'a> {
    pub id: &'a str,
    pub title: String,
    pub unit: String,
    /// The x axis' extent.
    pub x_domain: (f64, f64),
    /// Labels along x, at values of the x domain.
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<LineSeries>,
    pub fixed: Option<(f64, f64)>,
    pub tick_label: &'a dyn Fn(f64, usize) -> String,
    pub empty: Option<String>,
    /// A vertical marker at this x (now, on today's curve).
    pub marker: Option<f64>,
    /// The SVG's size and margins (top, right, bottom, left).
    pub size: (f64, f64),
    pub margins: [f64; 4],
}

/// A line chart.
pub fn line_chart(spec: &LineChart<'_>) -> ChartSvg {
    let frame = Frame::new(spec.size.0, spec.size.1, spec.margins);
    let values = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(_, v)| *v));
    let ticks = value_ticks(values, spec.fixed);
    let x = Scale::new(spec.x_domain, (frame.left, frame.right));
    let y = Scale::new((ticks.min, ticks.max), (frame.bottom, frame.top));
    let lines = spec
        .series
        .iter()
        .map(|s| {
            let points: Vec<Option<(f64, f64)>> = s
                .points
                .iter()
                .map(|(px, v)| v.filter(|v| v.is_finite()).map(|v| (x.map(*px), y.map(v))))
                .collect();
            let dots = points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let (px, py) = (*p)?;
                    let before = i.checked_sub(1).and_then(|j| points[j]);
                    let after = points.get(i + 1).copied().flatten();
                    (before.is_none() && after.is_none()).then(|| (coord(px), coord(py)))
                })
                .collect();
            LineMark {
                d: line_path(&points),
                class: s.class,
                dots,
            }
        })
        .collect();
    ChartSvg {
        id: spec.id.to_string(),
        title: spec.title.clone(),
        width: coord(frame.width),
        height: coord(frame.height),
        left: coord(frame.left),
        right: coord(frame.right),
        top: coord(frame.top),
        bottom: coord(frame.bottom),
        baseline: coord(y.map(0.0f64.clamp(ticks.min, ticks.max))),
        value_ticks: ticks
            .values
            .iter()
            .map(|v| TickMark {
                at: coord(y.map(*v)),
                label: (spec.tick_label)(*v, ticks.decimals),
            })
            .collect(),
        horizontal: false,
        category_ticks: spec
            .x_ticks
            .iter()
            .map(|(v, label)| TickMark {
                at: coord(x.map(*v)),
                label: label.clone(),
            })
            .collect(),
        row_labels: vec![],
        unit: spec.unit.clone(),
        bars: vec![],
        lines,
        empty: spec.empty.clone(),
        marker_x: spec.marker.map(|m| coord(x.map(m))),
    }
}

/// What a horizontal, stacked bar chart shows: one row per name.
#[derive(Clone)]
pub struct RowChart<'a> {
    pub id: &'a str,
    pub title: String,
    pub unit: String,
    pub rows: Vec<String>,
    /// Stacked left to right, in this order; values below 0 count as 0.
    pub series: Vec<Series>,
    pub tick_label: &'a dyn Fn(f64, usize) -> String,
    pub value_label: &'a dyn Fn(f64) -> String,
    pub empty: Option<String>,
}

/// Row labels longer than this many characters are shortened with "…".
const ROW_LABEL_CHARS: usize = 34;
/// Height of one row of a [`RowChart`], in SVG units.
const ROW_HEIGHT: f64 = 34.0;

/// A horizontal stacked bar chart, as high as its rows need.
pub fn row_chart(spec: &RowChart<'_>) -> ChartSvg {
    let rows = spec.rows.len().max(1);
    let height = 26.0 + 30.0 + ROW_HEIGHT * rows as f64;
    let frame = Frame::new(PAGE_CHART.0, height, [26.0, 16.0, 30.0, 250.0]);
    let sums = (0..spec.rows.len()).map(|i| {
        spec.series
            .iter()
            .filter_map(|s| s.values.get(i).copied().flatten())
            .map(|v| v.max(0.0))
            .sum::<f64>()
    });
    let ticks = value_ticks(sums, None);
    let x = Scale::new((ticks.min, ticks.max), (frame.left, frame.right));
    let band = Band {
        start: frame.top,
        end: frame.bottom,
        count: rows,
        padding: 0.3,
    };
    let mut bars = Vec::new();
    let mut row_labels = Vec::new();
    for (i, name) in spec.rows.iter().enumerate() {
        let (y0, thickness) = band.bar(i, 0, 1);
        let mut at = 0.0;
        for s in &spec.series {
            let Some(v) = s.values.get(i).copied().flatten().filter(|v| v.is_finite()) else {
                continue;
            };
            let v = v.max(0.0);
            let (x0, x1) = (x.map(at), x.map(at + v));
            at += v;
            bars.push(BarMark {
                x: coord(x0),
                y: coord(y0),
                width: coord(x1 - x0),
                height: coord(thickness),
                class: s.class,
                hatched: s.hatched,
                tip: format!("{name} · {} : {}", s.label, (spec.value_label)(v)),
            });
        }
        let text = if name.chars().count() > ROW_LABEL_CHARS {
            let cut: String = name.chars().take(ROW_LABEL_CHARS - 1).collect();
            format!("{}…", cut.trim_end())
        } else {
            name.clone()
        };
        row_labels.push(RowLabel {
            x: coord(frame.left - 8.0),
            y: coord(band.center(i)),
            text,
            full: name.clone(),
        });
    }
    ChartSvg {
        id: spec.id.to_string(),
        title: spec.title.clone(),
        width: coord(frame.width),
        height: coord(frame.height),
        left: coord(frame.left),
        right: coord(frame.right),
        top: coord(frame.top),
        bottom: coord(frame.bottom),
        baseline: coord(x.map(0.0)),
        value_ticks: ticks
            .values
            .iter()
            .map(|v| TickMark {
                at: coord(x.map(*v)),
                label: (spec.tick_label)(*v, ticks.decimals),
            })
            .collect(),
        horizontal: true,
        category_ticks: vec![],
        row_labels,
        unit: spec.unit.clone(),
        bars,
        lines: vec![],
        empty: spec.empty.clone(),
        marker_x: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: f64, decimals: usize) -> String {
        format!("{v:.decimals$}")
    }

    #[test]
    fn a_scale_maps_linearly_and_may_turn_upside_down() {
        // 0..6000 W onto y from 220 (bottom) to 20 (top).
        let y = Scale::new((0.0, 6000.0), (220.0, 20.0));
        assert_eq!(y.map(0.0), 220.0);
        assert_eq!(y.map(3000.0), 120.0);
        assert_eq!(y.map(6000.0), 20.0);
        // 220 − 4321 / 6000 × 200 = 75.9667
        assert!((y.map(4321.0) - 75.966_666_666_666_67).abs() < 1e-9);
        assert_eq!(Scale::new((5.0, 5.0), (0.0, 100.0)).map(7.0), 0.0);
    }

    #[test]
    fn ticks_are_round_and_cover_the_values() {
        // 4321 / 4 = 1080 per interval: the next round step is 2000.
        let t = nice_ticks(0.0, 4321.0, 4);
        assert_eq!((t.min, t.max, t.step), (0.0, 6000.0, 2000.0));
        assert_eq!(t.values, [0.0, 2000.0, 4000.0, 6000.0]);
        assert_eq!(t.decimals, 0);
        // 1700 / 4 = 425: 500, from −500 to 1500.
        let t = nice_ticks(-500.0, 1200.0, 4);
        assert_eq!(t.values, [-500.0, 0.0, 500.0, 1000.0, 1500.0]);
        // 1.43 / 5 = 0.286: 0.5 (0.25 would need six intervals), one decimal.
        let t = nice_ticks(0.0, 1.43, 5);
        assert_eq!(t.values, [0.0, 0.5, 1.0, 1.5]);
        assert_eq!(t.decimals, 1);
        // 10 / 4 = 2.5 exactly.
        let t = nice_ticks(0.0, 10.0, 4);
        assert_eq!(t.values, [0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(t.decimals, 1);
        // Shares: 0 to 100 % in five.
        assert_eq!(
            nice_ticks(0.0, 100.0, 5).values,
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        // Nothing at all: 0 to 1.
        let t = nice_ticks(0.0, 0.0, 5);
        assert_eq!((t.min, t.max), (0.0, 1.0));
        // 0.1 + 0.2 is not 0.30000000000000004 on an axis.
        let t = nice_ticks(0.0, 0.5, 5);
        assert_eq!(t.values, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]);
    }

    #[test]
    fn bands_share_out_the_axis() {
        // Four slots of 25 over 0..100, a fifth of each left empty.
        let band = Band {
            start: 0.0,
            end: 100.0,
            count: 4,
            padding: 0.2,
        };
        assert_eq!(band.slot(), 25.0);
        assert_eq!(band.center(1), 37.5);
        assert_eq!(band.bar(0, 0, 1), (2.5, 20.0));
        assert_eq!(band.bar(3, 0, 1), (77.5, 20.0));
        // Two bars side by side in slot 1: 25 + 2.5, then 10 further.
        assert_eq!(band.bar(1, 0, 2), (27.5, 10.0));
        assert_eq!(band.bar(1, 1, 2), (37.5, 10.0));
    }

    #[test]
    fn paths_break_where_values_are_missing() {
        let d = line_path(&[
            Some((0.0, 100.0)),
            Some((50.0, 50.04)),
            None,
            Some((100.0, -0.01)),
        ]);
        assert_eq!(d, "M0 100L50 50M100 0");
        assert_eq!(line_path(&[None, None]), "");
        assert_eq!(coord(12.34), "12.3");
        assert_eq!(coord(-0.04), "0");
        assert_eq!(coord(75.966), "76");
    }

    /// Two hours: 1000 and 3000 Wh of production, 500 Wh and nothing of
    /// consumption. Frame 720 x 260, margins 26/10/30/58: the plot runs x 58..710,
    /// y 230 (bottom) .. 26 (top). 3000 / 5 = 600 per interval: ticks by 1000, 0 to
    /// 3000, 68 apart. Slots of 326, bars of 326 × 0.8 / 2 =
    /// 130.4 starting at 58 + 32.6 = 90.6; 1000 Wh is 204 × 1/3 = 68 high.
    #[test]
    fn a_grouped_bar_chart_puts_each_value_where_worked_out() {
        let label = |v: f64, d: usize| plain(v, d);
        let value = |v: f64| format!("{v} Wh");
        let chart = bar_chart(&BarChart {
            id: "energy",
            title: "Energy".into(),
            unit: "Wh".into(),
            categories: vec![Some("10".into()), None],
            category_names: vec!["10 h".into(), "11 h".into()],
            series: vec![
                Series {
                    class: "series-production",
                    label: "Production".into(),
                    values: vec![Some(1000.0), Some(3000.0)],
                    hatched: false,
                },
                Series {
                    class: "series-consumption",
                    label: "Consumption".into(),
                    values: vec![Some(500.0), None],
                    hatched: true,
                },
            ],
            stacked: false,
            fixed: None,
            tick_label: &label,
            value_label: &value,
            empty: None,
        });
        let ticks: Vec<(&str, &str)> = chart
            .value_ticks
            .iter()
            .map(|t| (t.at.as_str(), t.label.as_str()))
            .collect();
        assert_eq!(
            ticks,
            [
                ("230", "0"),
                ("162", "1000"),
                ("94", "2000"),
                ("26", "3000")
            ]
        );
        assert_eq!(chart.baseline, "230");
        let rects: Vec<(&str, &str, &str, &str, bool)> = chart
            .bars
            .iter()
            .map(|b| {
                (
                    b.x.as_str(),
                    b.y.as_str(),
                    b.width.as_str(),
                    b.height.as_str(),
                    b.hatched,
                )
            })
            .collect();
        assert_eq!(
            rects,
            [
                ("90.6", "162", "130.4", "68", false),
                // Consumption beside it: 90.6 + 130.4; 500 Wh is 34 high.
                ("221", "196", "130.4", "34", true),
                // Second slot: 58 + 326 + 32.6 = 416.6; 3000 Wh reaches the top.
                ("416.6", "26", "130.4", "204", false),
            ]
        );
        assert_eq!(chart.bars[0].tip, "10 h · Production : 1000 Wh");
        let labels: Vec<(&str, &str)> = chart
            .category_ticks
            .iter()
            .map(|t| (t.at.as_str(), t.label.as_str()))
            .collect();
        // The middle of the first slot: 58 + 163.
        assert_eq!(labels, [("221", "10")]);
    }

    /// Charge below the axis, discharge above, in one slot: −600 and +300 Wh over
    /// ticks −600..400 by 200 (1000 / 5): y 230 is −600, 26 is 400, so 0 is at
    /// 230 − 204 × 0.6 = 107.6, 300 Wh is 61.2 high and 600 Wh 122.4 deep.
    #[test]
    fn stacked_bars_go_up_and_down_from_zero() {
        let label = |v: f64, d: usize| plain(v, d);
        let value = |v: f64| format!("{v}");
        let chart = bar_chart(&BarChart {
            id: "battery",
            title: "Battery".into(),
            unit: "Wh".into(),
            categories: vec![Some("1".into())],
            category_names: vec!["1".into()],
            series: vec![
                Series {
                    class: "series-discharge",
                    label: "Discharge".into(),
                    values: vec![Some(300.0)],
                    hatched: false,
                },
                Series {
                    class: "series-charge",
                    label: "Charge".into(),
                    values: vec![Some(-600.0)],
                    hatched: true,
                },
            ],
            stacked: true,
            fixed: None,
            tick_label: &label,
            value_label: &value,
            empty: None,
        });
        assert_eq!(
            chart.value_ticks.first().map(|t| t.label.as_str()),
            Some("-600")
        );
        assert_eq!(
            chart.value_ticks.last().map(|t| t.label.as_str()),
            Some("400")
        );
        assert_eq!(chart.baseline, "107.6");
        let rects: Vec<(&str, &str)> = chart
            .bars
            .iter()
            .map(|b| (b.y.as_str(), b.height.as_str()))
            .collect();
        assert_eq!(rects, [("46.4", "61.2"), ("107.6", "122.4")]);
        // One slot of 652: the bar is 521.6 wide from 58 + 65.2.
        assert_eq!(
            (chart.bars[0].x.as_str(), chart.bars[0].width.as_str()),
            ("123.2", "521.6")
        );
    }

    /// A day from 0 to 24 h over x 50..590 (22.5 per hour); 0..4 kW over y
    /// 220..20 (50 per kW). A value at 6 h of 2 kW is at (185, 120).
    #[test]
    fn a_line_chart_places_points_and_breaks_at_gaps() {
        let label = |v: f64, d: usize| plain(v, d);
        let chart = line_chart(&LineChart {
            id: "today",
            title: "Today".into(),
            unit: "kW".into(),
            x_domain: (0.0, 24.0),
            x_ticks: vec![(0.0, "0 h".into()), (12.0, "12 h".into())],
            series: vec![LineSeries {
                class: "series-production",
                points: vec![
                    (6.0, Some(2.0)),
                    (7.0, Some(4.0)),
                    (8.0, None),
                    (9.0, Some(1.0)),
                    (10.0, None),
                ],
            }],
            fixed: None,
            tick_label: &label,
            empty: None,
            marker: Some(9.0),
            size: (600.0, 260.0),
            margins: [20.0, 10.0, 40.0, 50.0],
        });
        assert_eq!(chart.lines[0].d, "M185 120L207.5 20M252.5 170");
        // The lone point at 9 h is drawn as a dot.
        assert_eq!(
            chart.lines[0].dots,
            [("252.5".to_string(), "170".to_string())]
        );
        let ticks: Vec<&str> = chart.category_ticks.iter().map(|t| t.at.as_str()).collect();
        assert_eq!(ticks, ["50", "320"]);
        assert_eq!(chart.marker_x.as_deref(), Some("252.5"));
        let values: Vec<&str> = chart.value_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(values, ["0", "1", "2", "3", "4"]);
    }

    /// Two services: served 300 + shed 100, served 50. Axis 0..400 by 100 over x
    /// 250..704 (1.135 per Wh); rows of 34 from y 26, a bar 34 × 0.7 = 23.8 thick
    /// from 26 + 5.1.
    #[test]
    fn a_row_chart_stacks_left_to_right() {
        let label = |v: f64, d: usize| plain(v, d);
        let value = |v: f64| format!("{v}");
        let chart = row_chart(&RowChart {
            id: "services",
            title: "Services".into(),
            unit: "Wh".into(),
            rows: vec![
                "Clinic fridge".into(),
                "A laundry with a very long name indeed".into(),
            ],
            series: vec![
                Series {
                    class: "series-served",
                    label: "Served".into(),
                    values: vec![Some(300.0), Some(50.0)],
                    hatched: false,
                },
                Series {
                    class: "series-shed",
                    label: "Shed".into(),
                    values: vec![Some(100.0), Some(0.0)],
                    hatched: true,
                },
            ],
            tick_label: &label,
            value_label: &value,
            empty: None,
        });
        assert_eq!(chart.height, "124");
        let rects: Vec<(&str, &str, &str, &str)> = chart
            .bars
            .iter()
            .map(|b| {
                (
                    b.x.as_str(),
                    b.y.as_str(),
                    b.width.as_str(),
                    b.height.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rects,
            [
                ("250", "31.1", "340.5", "23.8"),
                ("590.5", "31.1", "113.5", "23.8"),
                ("250", "65.1", "56.8", "23.8"),
                ("306.8", "65.1", "0", "23.8"),
            ]
        );
        assert_eq!(
            chart.row_labels[1].text,
            "A laundry with a very long name i…"
        );
        assert_eq!(
            chart.row_labels[1].full,
            "A laundry with a very long name indeed"
        );
        assert_eq!(chart.row_labels[0].y, "43");
    }
}
