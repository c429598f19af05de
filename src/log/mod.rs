//! nix's `--log-format internal-json` log: one stderr line in, one typed [`Event`] out.
//!
//! nix writes `@nix {json}` lines (preceded by `<N>` when it runs with `IN_SYSTEMD=1`), mixed
//! with whatever else reaches its stderr (ssh warnings, `nh`'s own lines). [`parse_line`] never
//! fails: anything it does not understand becomes [`Event::Plain`] so the user still sees it.

mod event;
mod parse;
mod types;

pub use event::{Activity, ActivityId, ActivityResult, Event, Field, Message, Progress, Start};
pub use parse::parse_line;
pub use types::{ActivityType, ResultType, Verbosity};
