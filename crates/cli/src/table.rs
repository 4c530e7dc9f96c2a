//! Aligned text tables for people: every column as wide as its widest cell (so a long list value
//! never shifts the columns after it), cells from outside escaped, very long cells shortened in
//! the middle, and the last column never padded.

use std::io;

use crate::output::{escape_control, Printer};

/// Cells longer than this are shortened in the middle (`abc…xyz`); `-o json` has them whole.
pub const MAX_CELL: usize = 60;

/// Which side a column's cells are padded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A table: a header row and data rows.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(ToString::to_string).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns column `index` (counts, revisions).
    pub fn right(mut self, index: usize) -> Self {
        if let Some(a) = self.align.get_mut(index) {
            *a = Align::Right;
        }
        self
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut row: Vec<String> = cells
            .into_iter()
            .map(|c| shorten(&escape_control(c.as_ref()).replace('\n', " ")))
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// True when the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines of text.
    pub fn lines(&self) -> Vec<String> {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(|row| {
                let mut line = String::new();
                for (i, cell) in row.iter().enumerate() {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    let last = i + 1 == n;
                    match self.align[i] {
                        Align::Right => {
                            line.push_str(&" ".repeat(pad));
                            line.push_str(cell);
                        }
                        Align::Left => {
                            line.push_str(cell);
                            if !last {
                                line.push_str(&" ".repeat(pad));
                            }
                        }
                    }
                    if !last {
                        line.push_str("  ");
                    }
                }
                line.trim_end().to_string()
            })
            .collect()
    }

    /// Prints the table on stdout.
    pub fn print(&self) -> io::Result<()> {
        let mut out = Printer::stdout();
        for line in self.lines() {
            out.line(format_args!("{line}"))?;
        }
        Ok(())
    }
}

/// `text` shortened in the middle to [`MAX_CELL`] characters.
fn shorten(text: &str) -> String {
    let n = text.chars().count();
    if n <= MAX_CELL {
        return text.to_string();
    }
    let keep = MAX_CELL - 1;
    let head: String = text.chars().take(keep - keep / 2).collect();
    let tail: String = text.chars().skip(n - keep / 2).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut t = Table::new(&["KEY", "VALUE", "N"]).right(2);
        t.row(["a", "one,two,three,four,five,six", "1"]);
        t.row(["longer.key", "x", "100"]);
        let lines = t.lines();
        assert_eq!(lines[0], "KEY         VALUE                          N");
        assert_eq!(lines[1], "a           one,two,three,four,five,six    1");
        assert_eq!(lines[2], "longer.key  x                            100");
    }

    #[test]
    fn cells_are_escaped_and_shortened() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["\x1b[2Jx", &"y".repeat(200)]);
        let line = &t.lines()[1];
        assert!(line.starts_with("\\u{1b}[2Jx"), "{line}");
        assert!(line.contains('…') && line.chars().count() < 100, "{line}");
    }
}
