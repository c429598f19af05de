//! The daemon's question: a daemon that trusts us is asked, with root's ssh, what each
//! builder's store holds ([`crate::probe::through_daemon`]); its answer also settles a check of
//! root's ssh the probe left to it.

use crate::builder::Builder;
use crate::plan::{self, Availability};
use crate::probe;
use crate::settings::Settings;
use crate::sources;

/// For builders verified by the daemon but out of our own ssh's reach: the daemon, with root's
/// ssh, says what their stores hold (the build hook copies such outputs back, unbuilt). The
/// same answer settles a check of root's ssh the probe left to it
/// ([`Builder::root_check_pending`]): a builder root's ssh cannot reach is taken out here.
pub(super) async fn ask(
    settings: &Settings,
    graph: &plan::Graph,
    builders: &mut [Builder],
    availability: &mut Availability,
    early: &mut crate::early_holdings::EarlyHoldings,
) {
    let missing: Vec<crate::store_path::StorePath> = sources::graph_paths(graph)
        .into_iter()
        .filter(|p| !availability.valid_locally.contains(p))
        .collect();
    let limit = settings.deadlines().through_daemon;
    let missing = &missing;
    let mut asks = Vec::new();
    for (i, b) in builders.iter().enumerate().filter(|(_, b)| {
        b.reachable() && b.verified() && (b.connection().is_none() || b.root_check_pending())
    }) {
        // Asked already while the probe ran (the same answer: see crate::early_holdings).
        let started = early.take(b.machine.uri.as_ref());
        asks.push(async move {
            let early = match started {
                Some(started) => started.answer().await,
                None => None,
            };
            let held = match early {
                Some(held) => held,
                None => probe::through_daemon::held(&b.machine, missing, limit).await,
            };
            (i, held)
        });
    }
    let answers = futures::future::join_all(asks).await;
    for (i, held) in answers {
        let b = &mut builders[i];
        b.root_check_answered(held.as_ref().map(|_| ()).map_err(Clone::clone));
        let Ok(held) = held else { continue };
        if b.connection().is_some() {
            // Our own ssh already said what its store holds (`sources::gather`).
            continue;
        }
        for path in held {
            let Ok(path) = crate::store_path::StorePath::parse(&path) else {
                continue;
            };
            let hits = availability.on_builders.entry(path).or_default();
            if !hits.iter().any(|h| h.builder == b.id) {
                hits.push(plan::BuilderHit {
                    builder: b.id,
                    references: Vec::new(),
                    substitutable: false,
                    nar_size: None,
                });
            }
        }
    }
}
