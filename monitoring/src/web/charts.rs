//! Charts drawn on the server as SVG with plotters: MOS over time on the
//! dashboard, MOS/loss/jitter per interval on a call's page.

use plotters::prelude::*;

use super::data::{Band, IntervalPoint};

const DIR_COLOURS: [RGBColor; 2] = [RGBColor(0x15, 0x65, 0xc0), RGBColor(0x8e, 0x24, 0xaa)];

fn band_colour(b: Band) -> RGBColor {
    let (r, g, bl) = b.rgb();
    RGBColor(r, g, bl)
}

/// plotters reports drawing errors; a chart that fails shows as a note.
fn or_note(r: Result<(), String>, svg: String) -> String {
    match r {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!(error = %e, "chart not drawn");
            format!("<p class=\"note\">chart not drawn: {}</p>", super::esc(&e))
        }
    }
}

fn hhmm(t: f64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// MOS of each call (x: end time, UTC) over [from, to], on the G.109 bands.
pub fn mos_over_time(points: &[(f64, f64)], from: f64, to: f64, threshold: f64) -> String {
    let mut svg = String::new();
    let r = draw_mos_over_time(&mut svg, points, from, to, threshold);
    or_note(r, svg)
}

fn draw_mos_over_time(
    svg: &mut String,
    points: &[(f64, f64)],
    from: f64,
    to: f64,
    threshold: f64,
) -> Result<(), String> {
    // x in hours since the epoch, so the axis ticks fall on whole hours.
    let (from, to) = (from / 3600.0, to / 3600.0);
    let root = SVGBackend::with_string(svg, (860, 300)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("MOS per call, last 24 h (UTC)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(from..to, 1.0f64..5.0f64)
        .map_err(|e| e.to_string())?;
    for b in Band::ALL {
        let top = match b {
            Band::Best => 5.0,
            Band::High => 4.34,
            Band::Medium => 4.03,
            Band::Low => 3.60,
            Band::Poor => 3.10,
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(from, b.floor()), (to, top)],
                band_colour(b).mix(0.18).filled(),
            )))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_mesh()
        .x_labels(13)
        .x_label_formatter(&|x| hhmm(*x * 3600.0))
        .y_desc("MOS")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            [(from, threshold), (to, threshold)],
            RED.stroke_width(1),
        ))
        .map_err(|e| e.to_string())?
        .label(format!("alarm threshold {threshold:.2}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .draw_series(points.iter().map(|&(t, m)| {
            Circle::new(
                (t / 3600.0, m.clamp(1.0, 5.0)),
                4,
                band_colour(Band::of(m)).filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .border_style(BLACK.mix(0.3))
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Three stacked panels (MOS, loss %, jitter ms) per interval; one line per
/// direction; x in seconds since `t0`.
pub fn call_timeline(dirs: &[(String, Vec<IntervalPoint>)], t0: f64) -> String {
    let mut svg = String::new();
    let r = draw_timeline(&mut svg, dirs, t0);
    or_note(r, svg)
}

fn draw_timeline(
    svg: &mut String,
    dirs: &[(String, Vec<IntervalPoint>)],
    t0: f64,
) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, (860, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_max = dirs
        .iter()
        .flat_map(|(_, p)| p.iter().map(|i| i.start - t0))
        .fold(1.0f64, f64::max)
        + 1.0;
    let max_of = |f: fn(&IntervalPoint) -> f64, floor: f64| {
        dirs.iter()
            .flat_map(|(_, p)| p.iter().map(f))
            .fold(floor, f64::max)
            * 1.2
    };
    type Pick = fn(&IntervalPoint) -> f64;
    let panels: [(&str, Pick, f64, f64); 3] = [
        ("MOS", |i| i.mos, 1.0, 5.0),
        (
            "loss %",
            |i| i.loss_percent,
            0.0,
            max_of(|i| i.loss_percent, 1.0),
        ),
        (
            "jitter ms",
            |i| i.jitter_ms,
            0.0,
            max_of(|i| i.jitter_ms, 1.0),
        ),
    ];
    let areas = root.split_evenly((3, 1));
    for (n, (area, (name, pick, lo, hi))) in areas.iter().zip(panels).enumerate() {
        let last = n == 2;
        let mut chart = ChartBuilder::on(area)
            .margin(6)
            .x_label_area_size(if last { 38 } else { 22 })
            .y_label_area_size(48)
            .build_cartesian_2d(0.0f64..x_max, lo..hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .y_desc(name)
            .x_desc(if last {
                "seconds since the first interval"
            } else {
                ""
            })
            .y_labels(5)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (label, points)) in dirs.iter().enumerate() {
            let colour = DIR_COLOURS[k % 2];
            let series: Vec<(f64, f64)> = points.iter().map(|i| (i.start - t0, pick(i))).collect();
            chart
                .draw_series(LineSeries::new(series.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            chart
                .draw_series(
                    series
                        .into_iter()
                        .map(|p| Circle::new(p, 3, colour.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK.mix(0.3))
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg() {
        let s = mos_over_time(&[(100.0, 4.4), (200.0, 2.0)], 0.0, 300.0, 3.6);
        assert!(s.starts_with("<svg"), "{s}");
        assert!(s.contains("alarm threshold 3.60"));
        let p = |t, m| IntervalPoint {
            start: t,
            mos: m,
            loss_percent: 1.0,
            jitter_ms: 2.0,
        };
        let t = call_timeline(&[("A→B".into(), vec![p(10.0, 4.4), p(20.0, 3.0)])], 10.0);
        assert!(t.starts_with("<svg") && t.contains("jitter ms"), "{t}");
    }
}
