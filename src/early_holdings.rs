//! What each builder holds, asked through a trusting nix-daemon as soon as the run knows that
//! something is missing and the evaluation has named the paths (after the noop check for
//! `build`, `home` and `os`; after the wanted outputs' validity for `plan`)
//! ([`crate::probe::through_daemon::held`]), while the probe and the store queries are still
//! under way, instead of after them. On a daemon client that question is the
//! longest step before nix starts (root's ssh session to the builder: about 1 s cold and 0.6 s
//! over a master at 30 ms each way); the probe alone took 0.2 s of the wait.
//!
//! The early asks use every path of the graph: the daemon's `nix-store -r --dry-run` skips the
//! paths valid here by itself, so the answer is the one the later ask (of the paths not valid
//! here) would give. An answer is used only for a builder the probe then says to ask
//! ([`crate::planning`]'s `ask_through_daemon`); the others' asks are dropped, which kills
//! their `nix-store`.

use crate::machines::Machine;
use crate::plan::Graph;
use crate::settings::Settings;
use crate::store_path::StorePath;
use std::collections::BTreeSet;
use tokio::task::JoinHandle;

type Answer = Result<BTreeSet<String>, String>;

/// The asks under way, one per configured builder; aborted when dropped.
#[derive(Default)]
pub struct EarlyHoldings {
    asks: Vec<(String, Option<Started>)>,
}

/// One ask under way; aborted when dropped unanswered.
pub struct Started(JoinHandle<Answer>);

impl Started {
    /// Its answer; `None` when its task failed (then the caller asks itself).
    pub async fn answer(mut self) -> Option<Answer> {
        (&mut self.0).await.ok()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl EarlyHoldings {
    /// Starts the asks when this run will ask a trusting daemon about its builders (a daemon
    /// client the daemon trusts, something missing, builders configured, `--mode` not local).
    pub fn start(settings: &Settings, graph: &Graph, missing: bool) -> EarlyHoldings {
        let trusted = settings.daemon().is_some_and(|d| d.trusted == Some(true));
        if !missing
            || !trusted
            || settings.forced() == crate::plan::Forced::Local
            || settings.builders().is_empty()
        {
            return EarlyHoldings::default();
        }
        let paths: Vec<StorePath> = crate::sources::graph_paths(graph).into_iter().collect();
        let limit = settings.deadlines().through_daemon;
        let asks = settings
            .builders()
            .iter()
            .map(|m| {
                let machine: Machine = m.clone();
                let paths = paths.clone();
                let ask = tokio::spawn(async move {
                    crate::probe::through_daemon::held(&machine, &paths, limit).await
                });
                (m.uri.to_string(), Some(Started(ask)))
            })
            .collect();
        EarlyHoldings { asks }
    }

    /// The ask for the builder at `uri`, when it was started early (once).
    pub fn take(&mut self, uri: &str) -> Option<Started> {
        let slot = self.asks.iter_mut().find(|(u, _)| u == uri)?;
        slot.1.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_started_is_nothing_taken() {
        let mut none = EarlyHoldings::default();
        assert!(none.take("ssh://b").is_none());
    }

    #[tokio::test]
    async fn an_answer_is_taken_once_and_the_rest_aborted() {
        let done = tokio::spawn(async { Ok(BTreeSet::from(["/nix/store/a-x".to_owned()])) });
        let forever = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(BTreeSet::new())
        });
        let forever_abort = forever.abort_handle();
        let mut early = EarlyHoldings {
            asks: vec![
                ("ssh://a".into(), Some(Started(done))),
                ("ssh://b".into(), Some(Started(forever))),
            ],
        };
        let got = early.take("ssh://a").expect("started");
        let got = got.answer().await.expect("an answer");
        assert_eq!(
            got.expect("held"),
            BTreeSet::from(["/nix/store/a-x".to_owned()])
        );
        assert!(early.take("ssh://a").is_none(), "taken once");
        drop(early);
        tokio::task::yield_now().await;
        assert!(forever_abort.is_finished(), "dropped asks are aborted");
    }
}
