//! Not written yet.

use anyhow::{Result, bail};

use crate::harness::{Ctx, Report};

/// Runs the scenario.
pub fn run(_ctx: &Ctx) -> Result<Report> {
    bail!("not written yet")
}
