//! A plain text table: a header, aligned columns two spaces apart, no trailing spaces.
//!
//! Widths count characters, not terminal cells (wide CJK characters and emoji make a row a little
//! wider; nothing breaks). A column may have a most width; longer cells are cut with `…` so one
//! long tag list cannot push every other column off the screen. Control characters (line breaks,
//! escapes) in cells become spaces: one row is one line, and stored text cannot drive the
//! terminal.

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub title: String,
    pub align: Align,
    /// Most characters of a cell; `None`: no limit.
    pub max: Option<usize>,
}

impl Column {
    pub fn left(title: &str) -> Column {
        Column {
            title: title.to_owned(),
            align: Align::Left,
            max: None,
        }
    }

    pub fn right(title: &str) -> Column {
        Column {
            align: Align::Right,
            ..Column::left(title)
        }
    }

    pub fn max(mut self, max: usize) -> Column {
        self.max = Some(max.max(1));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut row: Vec<String> = cells
            .into_iter()
            .zip(&self.columns)
            .map(|(cell, col)| fit(&cell, col.max))
            .collect();
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
    }

    /// The table as text, one line per row, each ending in `\n`; `bold_header` wraps the header
    /// line in ANSI bold.
    pub fn render(&self, bold_header: bool) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([col.title.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let titles: Vec<String> = self.columns.iter().map(|c| c.title.clone()).collect();
        let mut out = String::new();
        let header = self.line(&titles, &widths);
        if bold_header {
            out.push_str(&format!("\x1b[1m{header}\x1b[0m\n"));
        } else {
            out.push_str(&header);
            out.push('\n');
        }
        for row in &self.rows {
            out.push_str(&self.line(row, &widths));
            out.push('\n');
        }
        out
    }

    fn line(&self, cells: &[String], widths: &[usize]) -> String {
        let mut line = String::new();
        for (i, (cell, col)) in cells.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            match col.align {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        line.truncate(line.trim_end().len());
        line
    }
}

/// One line, at most `max` characters (the last one `…` when cut).
fn fit(cell: &str, max: Option<usize>) -> String {
    let one_line: String = cell
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match max {
        Some(max) if one_line.chars().count() > max => {
            let mut cut: String = one_line.chars().take(max - 1).collect();
            cut.push('…');
            cut
        }
        _ => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_cut() {
        let mut t = Table::new(vec![
            Column::left("name"),
            Column::right("n"),
            Column::left("tags").max(6),
        ]);
        t.row(vec!["a".into(), "1000".into(), "x,y,z,w,v".into()]);
        t.row(vec!["bbbb\nc".into(), "2".into()]);
        assert_eq!(
            t.render(false),
            "name       n  tags\n\
             a       1000  x,y,z…\n\
             bbbb c     2\n"
        );
    }
}
