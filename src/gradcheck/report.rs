//! The suite's report: the table, element-by-element details with the
//! worst element and a re-run line for every failure, JSON lines and JUnit
//! XML for CI.

use std::fmt;

use super::Row;

/// Which checks [`Report::details`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Failures,
    All,
}
use crate::error::{Error, Result};
use crate::shaders::Precision;

/// The suite's result.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// How it ran, for the lines that re-run a failing case.
    pub seed: u64,
    pub precision: Precision,
    pub fast: bool,
    /// The command that re-runs a row, where it is not `--op … --case …`
    /// (the whole-model check).
    pub command: Option<String>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| !r.passed).collect()
    }
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.passed)
    }
    /// Ok when every row passed, else the typed failure.
    pub fn into_result(self) -> Result<Report> {
        let failed = self.failures();
        if failed.is_empty() {
            return Ok(self);
        }
        let mut names: Vec<String> = failed
            .iter()
            .map(|r| format!("{} {}", r.op, r.check))
            .collect();
        names.dedup();
        Err(Error::GradcheckFailed {
            failed: failed.len(),
            total: self.rows.len(),
            names: names.join(", "),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:<22} {:<34} {:>10} {:>10}  {:<20} result",
            "op", "shape", "check", "max abs", "max rel", "tolerance"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<8} {:<22} {:<34} {:>10.2e} {:>10.2e}  {:<20} {}",
                r.op,
                r.shape,
                r.check,
                r.max_abs,
                r.max_rel,
                r.tol.to_string(),
                if r.passed { "pass" } else { "FAIL" }
            )?;
        }
        let failed = self.failures().len();
        write!(
            f,
            "{} checks: {} passed, {} failed",
            self.rows.len(),
            self.rows.len() - failed,
            failed
        )
    }
}

impl Report {
    /// Element by element, as llm.c's checker prints them: for every failed
    /// check (every check when `all`), its first elements out of tolerance
    /// — index, the tested (analytic / GPU) value, the trusted (numeric /
    /// f64 reference) value and their difference. Passing checks list
    /// their first elements.
    pub fn details(&self, shown: Shown) -> String {
        let all = shown == Shown::All;
        let mut out = String::new();
        for r in self.rows.iter().filter(|r| all || !r.passed) {
            out += &format!(
                "{} {} {} — {}:\n    {:>8} {:>16} {:>16} {:>12}\n",
                r.op,
                r.shape,
                r.check,
                if r.passed {
                    "first elements (all within tolerance)"
                } else {
                    "first elements out of tolerance"
                },
                "index",
                "tested",
                "trusted",
                "difference"
            );
            for &(i, a, b) in &r.first {
                out += &format!("    {i:>8} {a:>16.8e} {b:>16.8e} {:>12.3e}\n", a - b);
            }
            if !r.passed {
                if let Some(w) = r.worst_in_words() {
                    out += &format!("    {w}\n");
                }
                out += &format!("    re-run this case alone: {}\n", self.repro(r));
            }
        }
        out
    }

    /// The command that re-runs just this row's case.
    pub fn repro(&self, r: &Row) -> String {
        if let Some(c) = &self.command {
            return c.clone();
        }
        format!(
            "postergrad gradcheck --op {} --case '{}' --seed {}{}{}",
            r.op,
            r.shape,
            self.seed,
            if self.precision == Precision::F64 {
                " --dtype f64"
            } else {
                ""
            },
            if self.fast { " --fast" } else { "" }
        )
    }

    /// One JSON object per row, each with the re-run command
    /// (`gradcheck --json`).
    pub fn json_lines(&self) -> String {
        self.rows
            .iter()
            .map(|r| {
                let mut v = r.to_json();
                v["repro"] = serde_json::Value::String(self.repro(r));
                v["dtype"] = serde_json::Value::String(self.precision.to_string());
                v.to_string() + "\n"
            })
            .collect()
    }

    /// A JUnit XML report, one test case per row (`gradcheck --junit FILE`),
    /// failures with the worst element and the re-run command.
    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let failed = self.failures().len();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"postergrad gradcheck\" tests=\"{}\" failures=\"{failed}\">\n<testsuite name=\"gradcheck ({})\" tests=\"{}\" failures=\"{failed}\">\n",
            self.rows.len(),
            self.precision,
            self.rows.len()
        );
        for r in &self.rows {
            let name = esc(&format!("{} {} {}", r.op, r.shape, r.check));
            let class = esc(&format!("gradcheck.{}", r.op));
            if r.passed {
                out += &format!("  <testcase classname=\"{class}\" name=\"{name}\"/>\n");
            } else {
                let message = esc(&r.worst_in_words().unwrap_or_else(|| "failed".into()));
                out += &format!(
                    "  <testcase classname=\"{class}\" name=\"{name}\">\n    <failure message=\"{message}\">{}</failure>\n  </testcase>\n",
                    esc(&self.repro(r))
                );
            }
        }
        out + "</testsuite>\n</testsuites>\n"
    }
}
