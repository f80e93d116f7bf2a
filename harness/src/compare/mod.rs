//! Comparing configurations (`quorate compare`): which settings to run and what each costs.
//!
//! - [`matrix`]: the configurations, from `--presets × --nemesis` or a `--matrix` TOML file,
//!   each a `quorate run` argv checked by run's own flag parser.
//! - [`expect`]: expectations (`expect = "valid"` or per check) judged over the seeds.
//! - [`measure`]: one finished run's figures, from its `results.json` and `history.jsonl`.
//! - [`row`]: a configuration's runs pooled into one row.
//! - [`table`]: the rows as cells, `compare.md` and `compare.json`.
//! - [`html`]: `compare.html`; the staleness curves are the checker's
//!   [`quorate_checker::report::plots::staleness_svg`], one plot for all configurations.
//!
//! Running the runs (one child `quorate run` each) is `cmd::compare`'s job.

pub mod expect;
pub mod html;
pub mod matrix;
pub mod measure;
pub mod row;
pub mod table;

use anyhow::Context;
use row::Row;
use std::path::Path;
use table::Meta;

/// Write `compare.md`, `compare.html`, `compare.json` and `staleness.svg` into `dir`.
pub fn write_all(dir: &Path, meta: &Meta, rows: &[Row]) -> anyhow::Result<()> {
    let write = |name: &str, body: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, body).with_context(|| format!("write {}", p.display()))
    };
    write("compare.md", table::markdown(meta, rows).into_bytes())?;
    write("compare.html", html::render(meta, rows).into_bytes())?;
    write(
        "compare.json",
        serde_json::to_vec_pretty(&table::json(meta, rows))?,
    )?;
    write(
        "staleness.svg",
        quorate_checker::report::plots::staleness_svg(&html::curves(rows)).into_bytes(),
    )?;
    Ok(())
}
