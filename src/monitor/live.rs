//! The monitor of a live run: a [`State`] and the renderer that shows it.

use super::{Render, RunRecord, State, Summary};
use crate::log::{parse_line, Event};
use std::time::Instant;

/// Follows one nix run: feed it nix's stderr lines as they come, then [`Monitor::finish`] it for
/// the [`Summary`].
///
/// Synchronous and cheap per line, so it can be driven from the task that reads the child's
/// stderr. The renderer decides nothing: it draws the state after each change.
///
/// ```no_run
/// use nixdispatch::{monitor::Monitor, render};
/// use std::time::Instant;
/// let choice = render::choose(nixdispatch::cli::ProgressArg::Auto, false, false, true, false);
/// let mut monitor = Monitor::new(render::renderer(choice, 0));
/// monitor.set_header("remote", "3 derivations must be built and seasmoke is reachable");
/// monitor.feed_line(r#"@nix {"action":"stop","id":1}"#, Instant::now());
/// let summary = monitor.finish(Instant::now());
/// let exit_code = if summary.ok { 0 } else { 1 };
/// ```
///
/// A monitor dropped without [`Monitor::finish`] (Ctrl-C, an error that ends the command)
/// ends the display anyway: the terminal is left clean and what happened so far is shown.
pub struct Monitor {
    state: State,
    renderer: Box<dyn Render + Send>,
    /// What the run did, when kept ([`Monitor::keep_record`]).
    record: Option<RunRecord>,
    finished: bool,
}

impl Monitor {
    /// A monitor drawing with `renderer` (see [`crate::render::renderer`]).
    pub fn new(renderer: Box<dyn Render + Send>) -> Self {
        Monitor {
            state: State::new(),
            renderer,
            record: None,
            finished: false,
        }
    }

    /// Keeps a [`RunRecord`] of what the run did (how each build ended and where, where each
    /// fetched path came from, what it all took), for the result file and the history: read it
    /// with [`Monitor::record`] or [`Monitor::finish_with_record`]. Call before feeding lines.
    pub fn keep_record(&mut self) {
        self.record.get_or_insert_with(RunRecord::default);
    }

    /// What the run did so far, when kept ([`Monitor::keep_record`]).
    pub fn record(&self) -> Option<&RunRecord> {
        self.record.as_ref()
    }

    /// Draws the state and moves on: the happenings drawn are noted in the record, then
    /// dropped.
    fn show(&mut self, now: Instant) {
        if let Some(record) = &mut self.record {
            record.note(self.state.happenings());
        }
        self.renderer.draw(&self.state, now);
        self.state.clear_happenings();
    }

    /// Shows the run's mode and the one-sentence reason for it (the plan), above the progress,
    /// with the whole run's expected time when the history knows it ([`Monitor::set_history`]).
    pub fn set_header(&mut self, mode: &str, reason: &str) {
        self.renderer
            .expected(self.state.run_estimate(Instant::now()));
        self.renderer.header(mode, reason);
    }

    /// The size of each store path the plan copies (see [`State::set_sizes`]).
    pub fn set_sizes(&mut self, sizes: std::collections::BTreeMap<String, u64>) {
        self.state.set_sizes(sizes);
    }

    /// What earlier runs took, and this run's steps (see [`State::set_history`]). Call before
    /// [`Monitor::set_header`], so the plan is shown with the run's expected time.
    pub fn set_history(
        &mut self,
        history: std::sync::Arc<crate::history::History>,
        run: Option<crate::history::RunEstimate>,
    ) {
        self.state.set_history(history, run);
    }

    /// The stores this run uses (builder and substituter URIs, e.g. `ssh-ng://seasmoke`), so
    /// that copies and substitutions nix reports from a hostless `ssh-ng://` (nix 2.26) are
    /// credited to the right one. Optional; call before feeding lines.
    pub fn set_known_stores(&mut self, uris: impl IntoIterator<Item = String>) {
        self.state.set_known_stores(uris);
    }

    /// See [`crate::monitor::State::same_link`].
    pub fn same_link(&mut self, alias: &str, name: &str) {
        self.state.same_link(alias, name);
    }

    /// See [`crate::monitor::State::builds_run_there`].
    pub fn builds_run_there(&mut self, host: &str) {
        self.state.builds_run_there(host);
    }

    /// Starts following a new nix run on the same display (a retry after the first run failed):
    /// what the failed run finished is kept, its failures and errors are dropped, so the
    /// summary covers the whole job and the retry alone decides whether it failed.
    pub fn restart(&mut self, now: Instant) {
        self.state.settle();
        self.show(now);
        self.state = self.state.next_attempt();
    }

    /// Prints a line of the caller's own (e.g. "builder seasmoke vanished, finishing locally")
    /// without garbling the progress display.
    pub fn message(&mut self, text: &str) {
        self.renderer.message(text);
    }

    /// Takes one stderr line of nix (with or without its line ending), read at `now`.
    /// Returns whether the display changed.
    pub fn feed_line(&mut self, line: &str, now: Instant) -> bool {
        self.feed_event(&parse_line(line), now)
    }

    /// Takes one already parsed event, read at `now`. Returns whether the display changed.
    pub fn feed_event(&mut self, event: &Event, now: Instant) -> bool {
        let changed = self.state.update(event, now);
        if changed {
            self.show(now);
        }
        changed
    }

    /// Lets the renderer catch up when no line came for a while (e.g. call it every 100-500 ms
    /// while waiting on nix); renderers cap their own redraw rate, so calling it often is cheap.
    pub fn tick(&mut self, now: Instant) {
        self.show(now);
    }

    /// The nix run's log has ended (its process exited): decides the builds whose ending was
    /// still open (see [`State::settle`]) and shows them. [`Monitor::finish`] does it too.
    pub fn end_of_log(&mut self, now: Instant) {
        self.state.settle();
        self.show(now);
    }

    /// What the run did so far; the whole state, for callers that want more than the summary.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether the log says the run failed so far (see [`State::has_failed`]).
    pub fn has_failed(&self) -> bool {
        self.state.has_failed()
    }

    /// Ends the display (bars cleared, summary shown or, with `--json`, written as the last
    /// line) and returns the summary. `summary.ok` is what the log says (no failed build, no
    /// error of nix's own that ended the run): the verdict of `nixdispatch monitor`, which
    /// has no exit status to go by. Callers that ran nix use [`Monitor::finish_with`].
    pub fn finish(self, now: Instant) -> Summary {
        self.finish_recorded(now).0
    }

    /// [`Monitor::finish`], with what the run did ([`Monitor::keep_record`]; empty when not kept).
    pub fn finish_recorded(mut self, now: Instant) -> (Summary, RunRecord) {
        self.state.settle();
        let ok = !self.state.has_failed();
        self.finish_with_record(now, ok)
    }

    /// Like [`Monitor::finish`], with the verdict given: whether nix (or nh, or the activation)
    /// succeeded, by its exit status. The log's messages never overrule it.
    pub fn finish_with(self, now: Instant, ok: bool) -> Summary {
        self.finish_with_record(now, ok).0
    }

    /// [`Monitor::finish_with`], with what the run did, its last happenings included
    /// ([`Monitor::keep_record`]; empty when not kept).
    pub fn finish_with_record(mut self, now: Instant, ok: bool) -> (Summary, RunRecord) {
        self.finished = true;
        self.state.settle();
        let mut summary = self.state.summary(now);
        summary.ok = ok;
        self.show(now);
        self.renderer.finish(&self.state, &summary);
        (summary, self.record.take().unwrap_or_default())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let now = Instant::now();
        self.state.settle();
        self.show(now);
        let mut summary = self.state.summary(now);
        summary.ok = false;
        self.renderer.abandon(&self.state, &summary);
    }
}
