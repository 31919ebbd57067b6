//! The benchmark chart, drawn with plotters: one group of bars per workload, one bar per variant,
//! the height its median ratio to native (the same round), whiskers from the smallest to the
//! largest round, and a line at 1 (native). SVG or PNG by the file's extension. Built from a
//! finished run or from its JSON document (`fusebox bench plot RESULT.json`).

use crate::report::Report;
use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// One bar: median, smallest and largest ratio to native.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct Ratio {
    /// Median over the rounds.
    pub median: f64,
    /// Smallest round.
    pub min: f64,
    /// Largest round.
    pub max: f64,
}

/// What the chart shows: workloads (groups), variants (bars) and the ratio of each pair.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bars {
    /// Workload names, in report order.
    pub workloads: Vec<String>,
    /// Variant names except native, in report order.
    pub variants: Vec<String>,
    /// `ratios[w][v]`: None when the pair did not run or failed.
    pub ratios: Vec<Vec<Option<Ratio>>>,
}

/// The fields of a JSON report the chart reads.
#[derive(serde::Deserialize)]
struct JsonReport {
    variants: Vec<JsonVariant>,
    cells: Vec<JsonCell>,
}

#[derive(serde::Deserialize)]
struct JsonVariant {
    name: String,
    kind: String,
}

#[derive(serde::Deserialize)]
struct JsonCell {
    workload: String,
    variant: String,
    ratio: Option<Ratio>,
}

impl Bars {
    fn build(
        variants: impl Iterator<Item = (String, bool)>,
        cells: impl Iterator<Item = (String, String, Option<Ratio>)>,
    ) -> Bars {
        let variants: Vec<String> = variants.filter(|(_, native)| !native).map(|(n, _)| n).collect();
        let mut bars = Bars { variants, ..Default::default() };
        for (workload, variant, ratio) in cells {
            let w = match bars.workloads.iter().position(|x| *x == workload) {
                Some(w) => w,
                None => {
                    bars.workloads.push(workload);
                    bars.ratios.push(vec![None; bars.variants.len()]);
                    bars.workloads.len() - 1
                }
            };
            if let Some(v) = bars.variants.iter().position(|x| *x == variant) {
                bars.ratios[w][v] = ratio;
            }
        }
        bars
    }

    /// The bars of a finished run.
    pub fn from_report(r: &Report) -> Bars {
        Bars::build(
            r.variants.iter().map(|v| (v.name.clone(), v.kind == "native")),
            r.cells.iter().map(|c| {
                let ratio = c.ratio.as_ref().map(|m| Ratio { median: m.median, min: m.min, max: m.max });
                (c.workload.clone(), c.variant.clone(), ratio)
            }),
        )
    }

    /// The bars of a run's JSON document (`fusebox bench --json`).
    pub fn from_json(text: &str) -> Result<Bars> {
        let r: JsonReport = serde_json::from_str(text).context("not a `fusebox bench --json` document")?;
        Ok(Bars::build(
            r.variants.into_iter().map(|v| (v.name, v.kind == "native")),
            r.cells.into_iter().map(|c| (c.workload, c.variant, c.ratio)),
        ))
    }

    /// The top of the y axis: above every whisker, its value label and the native line, plus
    /// the band the legend takes at the top (so it never covers a bar), rounded up to 0.25.
    fn y_top(&self) -> f64 {
        let max = self.ratios.iter().flatten().flatten().map(|r| r.max).fold(1.0, f64::max);
        let legend = (LEGEND_ROW * (self.variants.len() + 1) as f64 + 24.0) / PLOT_HEIGHT;
        ((max * 1.1 / (1.0 - legend)) / 0.25).ceil() * 0.25
    }
}

/// Image size in pixels.
const SIZE: (u32, u32) = (1200, 640);
/// Height of the plotting area, about: the image less caption, margins and the x labels.
const PLOT_HEIGHT: f64 = 520.0;
/// Height of one legend row, pixels.
const LEGEND_ROW: f64 = 19.0;

/// `fusebox bench plot JSON -o FILE...`: the chart of a saved run.
pub fn plot_saved(json: &Path, outputs: &[std::path::PathBuf]) -> Result<()> {
    let text = std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let bars = Bars::from_json(&text).with_context(|| json.display().to_string())?;
    for out in outputs {
        draw(&bars, out)?;
    }
    Ok(())
}

/// Colour-blind-safe colours (Okabe-Ito), one per variant, repeated if there are more.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// Draw `bars` into `path`: SVG for `.svg`, PNG for `.png`.
pub fn draw(bars: &Bars, path: &Path) -> Result<()> {
    if bars.workloads.is_empty() || bars.variants.is_empty() {
        bail!("nothing to plot: the run has no ratio to native");
    }
    let size = SIZE;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let result = match ext.as_str() {
        "svg" => paint(bars, SVGBackend::new(path, size).into_drawing_area()),
        "png" => paint(bars, BitMapBackend::new(path, size).into_drawing_area()),
        _ => bail!("{}: the chart is written as .svg or .png", path.display()),
    };
    result.with_context(|| format!("drawing the chart into {}", path.display()))
}

fn paint<DB: DrawingBackend>(bars: &Bars, root: DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (nw, nv) = (bars.workloads.len(), bars.variants.len());
    let top = bars.y_top();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "fusebox bench: each variant relative to native (median of the rounds, whiskers min-max)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..nw as f64, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("ratio to native (higher is better)")
        .y_labels(12)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(err)?;

    // Workload names under their groups.
    let label = ("sans-serif", 15).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
    for (w, name) in bars.workloads.iter().enumerate() {
        let (x, _) = chart.backend_coord(&(w as f64 + 0.5, 0.0));
        let (_, y) = chart.backend_coord(&(0.0, 0.0));
        root.draw(&Text::new(name.clone(), (x, y + 8), label.clone())).map_err(err)?;
    }

    // Bars, whiskers, and the legend entry of each variant.
    let width = 0.8 / nv as f64;
    for (v, name) in bars.variants.iter().enumerate() {
        let colour = COLOURS[v % COLOURS.len()];
        let bar = |w: usize| {
            let x0 = w as f64 + 0.1 + v as f64 * width;
            (x0 + width * 0.08, x0 + width * 0.92)
        };
        let present: Vec<(usize, Ratio)> =
            (0..nw).filter_map(|w| bars.ratios[w][v].map(|r| (w, r))).collect();
        chart
            .draw_series(present.iter().map(|&(w, r)| {
                let (a, b) = bar(w);
                Rectangle::new([(a, 0.0), (b, r.median)], colour.filled())
            }))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        chart
            .draw_series(present.iter().map(|&(w, r)| {
                let (a, b) = bar(w);
                let mid = (a + b) / 2.0;
                PathElement::new(vec![(mid, r.min), (mid, r.max)], BLACK.stroke_width(1))
            }))
            .map_err(err)?;
        // The median above the whisker.
        let value = ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(present.iter().map(|&(w, r)| {
                let (a, b) = bar(w);
                Text::new(
                    format!("{:.2}", r.median),
                    ((a + b) / 2.0, r.max.max(r.median) + top * 0.01),
                    value.clone(),
                )
            }))
            .map_err(err)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 1.0), (nw as f64, 1.0)],
            RGBColor(120, 120, 120).stroke_width(2),
        )))
        .map_err(err)?
        .label("native = 1")
        .legend(|(x, y)| {
            PathElement::new(vec![(x, y), (x + 14, y)], RGBColor(120, 120, 120).stroke_width(2))
        });
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> String {
        serde_json::json!({
            "variants": [
                {"name": "native", "kind": "native"},
                {"name": "fusebox-memfs", "kind": "fusebox"},
                {"name": "hp", "kind": "peer"}
            ],
            "cells": [
                {"workload": "a-seq-write-4k", "variant": "native", "ratio": null},
                {"workload": "a-seq-write-4k", "variant": "fusebox-memfs",
                 "ratio": {"median": 1.2, "min": 1.1, "max": 1.4, "runs": [1.1, 1.2, 1.4]}},
                {"workload": "a-seq-write-4k", "variant": "hp",
                 "ratio": {"median": 0.9, "min": 0.8, "max": 1.0, "runs": [0.8, 0.9, null]}},
                {"workload": "e-create-stat-unlink", "variant": "fusebox-memfs",
                 "ratio": {"median": 0.3, "min": 0.2, "max": 0.4, "runs": []}}
            ]
        })
        .to_string()
    }

    #[test]
    fn bars_from_json_leave_native_out_and_keep_gaps() {
        let b = Bars::from_json(&json()).unwrap();
        assert_eq!(b.workloads, ["a-seq-write-4k", "e-create-stat-unlink"]);
        assert_eq!(b.variants, ["fusebox-memfs", "hp"]);
        assert_eq!(b.ratios[0][1].unwrap().median, 0.9);
        assert_eq!(b.ratios[1][1], None);
        // 1.4 * 1.1 = 1.54 below a legend band of (3 * 19 + 24) / 520 of the height: 1.82,
        // rounded up to a quarter.
        assert_eq!(b.y_top(), 2.0);
        assert!(Bars::from_json("{}").is_err());
    }

    #[test]
    fn draws_svg_and_png() {
        let b = Bars::from_json(&json()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("c.svg");
        draw(&b, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<svg")
                && text.contains("fusebox-memfs")
                && text.contains("e-create-stat-unlink")
        );
        let png = dir.path().join("c.png");
        draw(&b, &png).unwrap();
        assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
        assert!(draw(&b, &dir.path().join("c.pdf")).is_err());
        assert!(draw(&Bars::default(), &svg).is_err());
    }
}
