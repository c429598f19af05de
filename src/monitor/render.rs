//! The interface the monitor draws into: a renderer ([`crate::render`] has them) shows the
//! monitor's state and decides nothing.

use super::{State, Summary};
use std::time::Instant;

/// One way of showing a run. Called by [`crate::monitor::Monitor`], never concurrently.
pub trait Render {
    /// Shows the run's mode and the reason for it, once, before the progress.
    fn header(&mut self, mode: &str, reason: &str);

    /// The whole run's expected time as it starts, when the history knows any of its steps;
    /// called just before [`Render::header`]. Renderers that show no estimate ignore it;
    /// wrappers pass it on.
    fn expected(&mut self, _estimate: Option<crate::history::estimate::Estimate>) {}

    /// Shows a line of the caller's own without garbling the progress.
    fn message(&mut self, text: &str);

    /// Shows the state after a change: the happenings since the last draw (one line each, for
    /// line-oriented renderers) and the current totals. May skip redrawing bars to cap the rate.
    fn draw(&mut self, state: &State, now: Instant);

    /// Ends the display and shows the summary. Called once, after the last draw.
    fn finish(&mut self, state: &State, summary: &Summary);

    /// Ends the display of a run that was stopped before it ended (Ctrl-C, or an error that
    /// made the caller give up): the terminal is left clean and what happened so far is shown.
    /// `summary.ok` is false. Called at most once, instead of [`Render::finish`].
    fn abandon(&mut self, state: &State, summary: &Summary);
}
