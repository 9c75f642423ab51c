//! What the records say: pairs, cells and their ranking, grid edges, seed-aware statistics,
//! the sweep's findings and the width-scaling fit. Pure functions of records; the report stage
//! writes them out.

pub mod edges;
pub mod findings;
pub mod pairs;
pub mod scaling;
pub mod stats;

pub use edges::{Edge, Grid};
pub use findings::Findings;
pub use pairs::{Cell, DEFAULT_RATIO, Pair, Ranked, SeedSpread, metric_of, pairs, speedup};
