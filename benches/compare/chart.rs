//! chart.svg: one bar section per chart kind, callfeed's median against ffmpeg's for each
//! figure a row of the table puts in it.

use crate::report::Comparison;

/// The chart's sections, drawn in this order (each even when none of its figures ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chart {
    CpuPerStream,
    Streams,
}

impl Chart {
    const ALL: [Chart; 2] = [Chart::CpuPerStream, Chart::Streams];

    fn title(self) -> &'static str {
        match self {
            Chart::CpuPerStream => "CPU seconds per media second, one stream (median)",
            Chart::Streams => "Concurrent real-time 720p30 streams (median)",
        }
    }
}

/// A chart row: label, callfeed's median, ffmpeg's median.
type Bar = (String, f64, f64);

pub(crate) fn svg(comparisons: &[Comparison]) -> String {
    let sections: Vec<(&str, Vec<Bar>)> = Chart::ALL
        .iter()
        .map(|&section| {
            let rows = comparisons
                .iter()
                .filter(|c| c.figure.chart == Some(section))
                .map(|c| {
                    (
                        c.name.chars().take(52).collect(),
                        c.callfeed.median,
                        c.ffmpeg.median,
                    )
                })
                .collect();
            (section.title(), rows)
        })
        .collect();
    svg_chart(&sections)
}

/// A bar chart, one section per (title, rows).
fn svg_chart(sections: &[(&str, Vec<Bar>)]) -> String {
    let width = 760;
    let bar_h = 16;
    let gap = 14;
    let label_w = 330;
    let row_h = 2 * bar_h + gap;
    let height: usize = sections
        .iter()
        .map(|(_, rows)| 30 + rows.len() * row_h)
        .sum::<usize>()
        + 20;
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='12'>"
    );
    let mut y = 0;
    for (title, rows) in sections {
        let max = rows
            .iter()
            .map(|r| r.1.max(r.2))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let scale = (width - label_w - 80) as f64 / max;
        svg.push_str(&format!(
            "<text x='10' y='{}' font-weight='bold'>{title}: callfeed (blue) vs ffmpeg (grey)</text>",
            y + 18
        ));
        y += 30;
        for (name, a, b) in rows {
            svg.push_str(&format!("<text x='10' y='{}'>{name}</text>", y + bar_h));
            for (j, (v, color)) in [(a, "#2b6cb0"), (b, "#a0a0a0")].iter().enumerate() {
                let yy = y + j * bar_h;
                let w = (*v * scale).max(1.0);
                svg.push_str(&format!(
                    "<rect x='{label_w}' y='{yy}' width='{w:.1}' height='{}' fill='{color}'/><text x='{:.1}' y='{}'>{v:.3}</text>",
                    bar_h - 2,
                    label_w as f64 + w + 4.0,
                    yy + bar_h - 4
                ));
            }
            y += row_h;
        }
    }
    svg.push_str("</svg>");
    svg
}
