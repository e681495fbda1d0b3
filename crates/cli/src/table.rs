//! Column alignment in the manner of Go's `text/tabwriter` as Cilium
//! configures it (min width 5, padding 3, spaces), so our tables line up the
//! way Cilium users expect. Trailing spaces are trimmed.

const MIN_WIDTH: usize = 5;
const PADDING: usize = 3;

#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new() -> Self {
        Table::default()
    }

    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The aligned text, one line per row, each ending in `\n`.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        // The last column is not padded, so its width does not matter.
        let mut widths = vec![MIN_WIDTH; columns.saturating_sub(1)];
        for row in &self.rows {
            // A row's last cell is not padded, so it does not widen its column.
            let padded = &row[..row.len().saturating_sub(1)];
            for (cell, width) in padded.iter().zip(widths.iter_mut()) {
                *width = (*width).max(cell.chars().count() + PADDING);
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_with_padding_three() {
        let mut t = Table::new();
        t.row(["ID", "LABELS"]);
        t.row(["256", "k8s:app=web"]);
        t.row(["", "k8s:tier=front"]);
        assert_eq!(
            t.render(),
            "ID    LABELS\n256   k8s:app=web\n      k8s:tier=front\n"
        );
    }

    #[test]
    fn min_width_five_and_wide_cells() {
        let mut t = Table::new();
        t.row(["a", "b", "c"]);
        t.row(["abcdefgh", "", "x"]);
        assert_eq!(t.render(), "a          b    c\nabcdefgh        x\n");
    }

    #[test]
    fn empty_table_renders_nothing() {
        assert_eq!(Table::new().render(), "");
    }

    #[test]
    fn short_rows_do_not_widen_columns() {
        let mut t = Table::new();
        t.row(["A:", "Ok", "fine"]);
        t.row(["B:", "a much longer last cell"]);
        assert_eq!(t.render(), "A:   Ok   fine\nB:   a much longer last cell\n");
    }
}
