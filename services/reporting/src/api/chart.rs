//! A report's series drawn as SVG line charts with plotters: one chart per
//! KPI, stacked, one coloured line per currency and group, a gap where a
//! bucket has no value. Text is left to the viewer's fonts.

use crm_proto::reporting as pb;
use plotters::prelude::*;

/// Distinct line colours, cycled.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The SVG of `answer`'s series, `width` wide and `height` per KPI.
pub fn render(answer: &pb::QueryKpisResponse, width: u32, height: u32) -> Result<String, String> {
    let mut svg = String::new();
    let charts = answer.results.len().max(1) as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (width, height * charts)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((charts as usize, 1));
        for (result, area) in answer.results.iter().zip(areas) {
            draw(result, &area)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    result: &pb::KpiResult,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), String> {
    let buckets: Vec<String> = result
        .lines
        .first()
        .map(|l| l.buckets.iter().map(|b| b.start_date.clone()).collect())
        .unwrap_or_default();
    let values = result
        .lines
        .iter()
        .flat_map(|l| l.buckets.iter().filter_map(|b| b.value));
    let (low, high) = values.fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let high = if high <= low { low + 1.0 } else { high * 1.05 };
    let last = buckets.len().saturating_sub(1).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(&result.kpi, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..last, low..high)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(buckets.len().min(12))
        .x_label_formatter(&|x| buckets.get(x.round() as usize).cloned().unwrap_or_default())
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, line) in result.lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let label = [line.currency.as_str(), line.group.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        // Consecutive buckets with values form one segment; a missing value breaks it.
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let mut segments = Vec::new();
        for (x, bucket) in line.buckets.iter().enumerate() {
            match bucket.value {
                Some(v) => segment.push((x as f64, v)),
                None => segments.push(std::mem::take(&mut segment)),
            }
        }
        segments.push(segment);
        let mut first = true;
        for points in segments.into_iter().filter(|s| !s.is_empty()) {
            let series = chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            if first && !label.is_empty() {
                series
                    .label(label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
                first = false;
            }
        }
    }
    if result
        .lines
        .iter()
        .any(|l| !l.currency.is_empty() || !l.group.is_empty())
    {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
