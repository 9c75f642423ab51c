//! Grid edges: a pair's grid is the set of eta_A values and the set of ratios its cells use; a
//! cell on the smallest or largest of either is on an [`Edge`], where the true optimum may lie
//! beyond the grid.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An edge of a pair's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    /// The smallest eta_A.
    EtaAMin,
    /// The largest eta_A.
    EtaAMax,
    /// The smallest ratio.
    RatioMin,
    /// The largest ratio.
    RatioMax,
}

impl Edge {
    /// Its name in tables: `eta_a_min`, `eta_a_max`, `ratio_min` or `ratio_max`.
    pub fn as_str(self) -> &'static str {
        match self {
            Edge::EtaAMin => "eta_a_min",
            Edge::EtaAMax => "eta_a_max",
            Edge::RatioMin => "ratio_min",
            Edge::RatioMax => "ratio_max",
        }
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pair's grid lines, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// eta_A values.
    pub eta_a: Vec<f64>,
    /// Ratios.
    pub ratio: Vec<f64>,
}

impl Grid {
    /// The grid the cells `(eta_a, ratio)` lie on.
    pub fn of(cells: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let (mut eta_a, mut ratio): (Vec<f64>, Vec<f64>) = cells.into_iter().unzip();
        for values in [&mut eta_a, &mut ratio] {
            values.sort_by(f64::total_cmp);
            values.dedup();
        }
        Self { eta_a, ratio }
    }

    /// The edges `cell` lies on. An axis with a single value has no inside, so a cell is on
    /// both its edges.
    pub fn edges(&self, (eta_a, ratio): (f64, f64)) -> Vec<Edge> {
        let mut edges = Vec::new();
        for (values, value, low, high) in [
            (&self.eta_a, eta_a, Edge::EtaAMin, Edge::EtaAMax),
            (&self.ratio, ratio, Edge::RatioMin, Edge::RatioMax),
        ] {
            if values.first() == Some(&value) {
                edges.push(low);
            }
            if values.last() == Some(&value) {
                edges.push(high);
            }
        }
        edges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_best_cell_on_each_of_the_four_edges_is_flagged_and_an_interior_one_is_not() {
        let etas = [1e-4, 1e-3, 1e-2];
        let ratios = [1.0, 4.0, 16.0];
        let grid = Grid::of(etas.iter().flat_map(|&e| ratios.iter().map(move |&r| (e, r))));
        assert_eq!(grid.edges((1e-4, 4.0)), [Edge::EtaAMin]);
        assert_eq!(grid.edges((1e-2, 4.0)), [Edge::EtaAMax]);
        assert_eq!(grid.edges((1e-3, 1.0)), [Edge::RatioMin]);
        assert_eq!(grid.edges((1e-3, 16.0)), [Edge::RatioMax]);
        assert_eq!(grid.edges((1e-2, 16.0)), [Edge::EtaAMax, Edge::RatioMax], "a corner");
        assert!(grid.edges((1e-3, 4.0)).is_empty(), "interior");
        assert_eq!(
            Grid::of([(1e-3, 4.0)]).edges((1e-3, 4.0)).len(),
            4,
            "one line has no inside"
        );
    }
}
