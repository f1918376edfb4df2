//! What a scenario prints: human lines, then one `RESULT key=value …` line for scripts
//! (bench/compare.sh reads it).

use std::fmt::Write as _;

#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub fields: Vec<(String, String)>,
}

impl Report {
    pub fn line(&mut self, text: impl Into<String>) {
        self.lines.push(text.into());
    }

    pub fn field(&mut self, key: &str, value: impl ToString) {
        self.fields.push((key.to_owned(), value.to_string()));
    }

    /// A number with a fixed count of decimals (absent values print as `na`).
    pub fn num(&mut self, key: &str, value: Option<f64>, decimals: usize) {
        let v = value.map_or_else(|| "na".to_owned(), |v| format!("{v:.decimals$}"));
        self.fields.push((key.to_owned(), v));
    }

    /// The value of a field, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn result_line(&self) -> String {
        let mut out = String::from("RESULT");
        for (k, v) in &self.fields {
            let _ = write!(out, " {k}={v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_lists_fields_in_order() {
        let mut r = Report::default();
        r.field("scenario", "chat");
        r.num("msgs_per_s", Some(1234.567), 1);
        r.num("server_us_per_msg", None, 2);
        assert_eq!(
            r.result_line(),
            "RESULT scenario=chat msgs_per_s=1234.6 server_us_per_msg=na"
        );
    }
}
