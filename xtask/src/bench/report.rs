//! The bench's results: named figures for machines (`target/bench.json`)
//! and tables for people (stdout).

use std::fmt::Write as _;

/// A figure's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A measured count.
    Int(u64),
    /// A measured quantity.
    Number(f64),
    /// Not measured, and why (e.g. "not measurable yet (issue 6): ...").
    Missing(String),
}

/// One named figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Flat machine name, e.g. `vits_ns_per_cmd_mapti_4096_events`.
    pub name: String,
    /// What was measured.
    pub value: Value,
    /// Unit of the value.
    pub unit: &'static str,
    /// One line on what it is.
    pub what: String,
}

impl Figure {
    /// A measured quantity.
    pub fn number(name: String, value: f64, unit: &'static str, what: String) -> Self {
        Self {
            name,
            value: Value::Number(value),
            unit,
            what,
        }
    }

    /// A measured count.
    pub fn int(name: String, value: u64, unit: &'static str, what: String) -> Self {
        Self {
            name,
            value: Value::Int(value),
            unit,
            what,
        }
    }

    /// A figure that cannot be measured yet, with the reason.
    pub fn missing(name: &str, unit: &'static str, what: &str, why: &str) -> Self {
        Self {
            name: name.into(),
            value: Value::Missing(why.into()),
            unit,
            what: what.into(),
        }
    }
}

/// Everything one `cargo xtask bench` run found.
#[derive(Default)]
pub struct Report {
    /// Figures in the order they were measured.
    pub figures: Vec<Figure>,
    /// Tables for people, in order.
    pub tables: Vec<String>,
    /// Facts about the run (command, date, machine), in order.
    pub info: Vec<(String, String)>,
}

impl Report {
    /// Adds a figure.
    pub fn push(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    /// Adds a table for people.
    pub fn table(&mut self, table: String) {
        self.tables.push(table);
    }

    /// Adds a fact about the run.
    pub fn info(&mut self, key: &str, value: String) {
        self.info.push((key.into(), value));
    }

    /// The report as JSON: run facts, `figures` (flat name -> value, null
    /// when not measurable), `units`, `not_measurable` (name -> reason) and
    /// `descriptions`.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n");
        for (key, value) in &self.info {
            // Counts and seconds stay numbers for machines.
            let value = match value.parse::<f64>() {
                Ok(number) if number.is_finite() => value.clone(),
                _ => json_string(value),
            };
            let _ = writeln!(out, "  {}: {value},", json_string(key));
        }
        let section = |out: &mut String, title: &str, rows: Vec<(String, String)>, last: bool| {
            let _ = writeln!(out, "  {}: {{", json_string(title));
            let count = rows.len();
            for (i, (name, value)) in rows.into_iter().enumerate() {
                let comma = if i + 1 < count { "," } else { "" };
                let _ = writeln!(out, "    {}: {value}{comma}", json_string(&name));
            }
            let _ = writeln!(out, "  }}{}", if last { "" } else { "," });
        };
        let figures = self
            .figures
            .iter()
            .map(|f| (f.name.clone(), json_value(&f.value)))
            .collect();
        section(&mut out, "figures", figures, false);
        let units = self
            .figures
            .iter()
            .map(|f| (f.name.clone(), json_string(f.unit)))
            .collect();
        section(&mut out, "units", units, false);
        let missing = self
            .figures
            .iter()
            .filter_map(|f| match &f.value {
                Value::Missing(why) => Some((f.name.clone(), json_string(why))),
                _ => None,
            })
            .collect();
        section(&mut out, "not_measurable", missing, false);
        let descriptions = self
            .figures
            .iter()
            .map(|f| (f.name.clone(), json_string(&f.what)))
            .collect();
        section(&mut out, "descriptions", descriptions, true);
        out.push_str("}\n");
        out
    }
}

/// The median of `samples` (sorted in place); NaN if empty.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    }
}

/// A value as JSON: numbers, or null for a missing or non-finite one.
fn json_value(value: &Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::Number(x) if x.is_finite() => {
            // Three decimals are far below the noise of every figure.
            let rounded = (x * 1000.0).round() / 1000.0;
            format!("{rounded}")
        }
        Value::Number(_) | Value::Missing(_) => "null".into(),
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_flat_figures_nulls_for_missing_and_escaped_strings() {
        let mut report = Report::default();
        report.info("command", "cargo xtask \"bench\"".into());
        report.push(Figure::int("a_count".into(), 3, "traps", "x".into()));
        report.push(Figure::number("b_ns".into(), 12.34567, "ns", "y".into()));
        report.push(Figure::missing(
            "c",
            "ticks",
            "z",
            "not measurable yet (issue 6)",
        ));
        let json = report.to_json();
        assert!(json.contains("\"command\": \"cargo xtask \\\"bench\\\"\","));
        assert!(json.contains("\"a_count\": 3,"));
        assert!(json.contains("\"b_ns\": 12.346,"));
        assert!(json.contains("\"c\": null\n"));
        assert!(json.contains("\"c\": \"not measurable yet (issue 6)\"\n"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
